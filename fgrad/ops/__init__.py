"""The primitive set, one module per family, each primitive with its rules beside it.

The package itself imports nothing: a module imports the families it uses. (Importing every
family here would make importing one first-order family pull in the higher-order ones, which
sit above the interpreters.)"""

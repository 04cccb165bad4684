"""fgrad.lax: the primitive-level API (strict shapes and dtypes), plus control flow
and collectives."""
from fgrad.ops.elementwise import *  # noqa: F401,F403
from fgrad.ops.special import *  # noqa: F401,F403
from fgrad.ops.special_gamma import *  # noqa: F401,F403
from fgrad.ops.special_incomplete import *  # noqa: F401,F403
from fgrad.ops.shape import *  # noqa: F401,F403
from fgrad.ops.indexing import *  # noqa: F401,F403
from fgrad.ops.reduction import *  # noqa: F401,F403
from fgrad.ops.contraction import *  # noqa: F401,F403
from fgrad.ops.lax_helpers import *  # noqa: F401,F403
from fgrad.ops.window import *  # noqa: F401,F403
from fgrad.ops.collective import *  # noqa: F401,F403
from fgrad.control_flow import *  # noqa: F401,F403
from fgrad.ops.sort import *  # noqa: F401,F403
from fgrad.ops.misc import *  # noqa: F401,F403
from fgrad.ops import linalg, linalg_rules  # noqa: F401  (jax.lax.linalg; its derivative rules)

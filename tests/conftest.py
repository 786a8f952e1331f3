"""pytest configuration shared by every test folder.

The shared helpers are defined in ``tests/support.py``; import them with
``from support import ...``. (Every folder's ``conftest.py`` is imported under
the one module name ``conftest``, so ``from conftest import`` is unreliable.)
They are also re-exported here for code that loads this file by its path.
"""

from __future__ import annotations

from support import IN_CI as IN_CI
from support import JS_DIR as JS_DIR
from support import NODE_MODULES as NODE_MODULES
from support import ROOT as ROOT
from support import require as require
from support import require_binary as require_binary
from support import require_node_modules as require_node_modules

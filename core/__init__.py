"""gen.core: the engine, the plugin system and the thin CLI (see README, Layout)."""

import time

# when this process began using gen (before torch loads): a --max-time budget covers all of it
STARTED = time.monotonic()

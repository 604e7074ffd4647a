"""`python -m gen.evals.agreement c|latex|gcc SRC ...`: see the package docstring."""

import sys

from gen.evals.agreement import main

main(sys.argv[1:])

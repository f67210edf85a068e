import os
import sys


def _leave(code: int) -> None:
    # Interrupted, with everything worth keeping saved. A Ctrl-C that reached a library's import
    # marks the interpreter to die by SIGINT at exit whatever the exit code: leave now, as 130.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


try:
    from globalconv.cli import main
except KeyboardInterrupt:
    print("globalconv: interrupted", file=sys.stderr)
    _leave(130)

code = main()
if code == 130:
    _leave(code)
sys.exit(code)

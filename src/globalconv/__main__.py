import sys

try:
    from globalconv.cli import main
except KeyboardInterrupt:
    print("globalconv: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())

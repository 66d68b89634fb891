"""Sum the JUnit XML reports of every nox test session into one 'N passed, N failed' line.

Exits 1 when no test ran at all, so a CI run that silently collected nothing does not pass.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
for report in sorted(Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        failed += bad
        skipped += skip
        passed += tests - bad - skip
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if passed == 0 or failed else 0)

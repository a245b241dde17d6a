"""Where the binaries under test are: PORCH_BUILD (default build/) names
the build directory, PORCH_ASAN=1 says it is a sanitizer build."""

import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                    ".."))
BUILD = os.path.join(ROOT, os.environ.get("PORCH_BUILD", "build"))
GATEWAY = os.path.join(BUILD, "porch-gateway")
AGENT = os.path.join(BUILD, "porch-agent")
PORCHCTL = os.path.join(BUILD, "porchctl")
ASAN = os.environ.get("PORCH_ASAN") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

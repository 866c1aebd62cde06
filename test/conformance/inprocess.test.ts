// The conformance suite in-process: every PSCI version offered, AArch64 and AArch32 callers, both conduits.
import { inProcessBackend } from "./inprocess.js";
import { conformanceSuite } from "./suite.js";

conformanceSuite(inProcessBackend);

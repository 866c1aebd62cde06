/** Evaluates a case's expectations against what a backend observed. Shared by every backend. */
import { expect } from "vitest";
import type { Case, CaseResult, Params } from "./case.js";
import { caseFailures } from "./verdict.js";

export function checkCase(c: Case, r: CaseResult, p: Params): void {
  expect(caseFailures(c, r, p)).toEqual([]);
}

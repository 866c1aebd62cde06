/**
 * `smcvisor run --record FILE [--record-limit MIB]`: the recorder for a run (src/record/recorder.ts), with
 * the scenario's text (and its policy file's) in the header so that `smcvisor replay` needs nothing else.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { readConfigFile, readConfigText } from "../machine/config-file.js";
import { DEFAULT_RECORD_LIMIT_MIB } from "../record/format.js";
import { Recorder } from "../record/recorder.js";
import { UsageError, type Io } from "./args.js";
import { versionLine } from "./help.js";
import { unwritable } from "./output.js";

/** The largest --record-limit: 64 GiB. */
export const RECORD_LIMIT_MAX_MIB = 65536;

/** The recorder the flags ask for, or null; a usage error for a bad limit or a file that cannot be written. */
export function openRecorder(flags: ReadonlyMap<string, string | true>, scenarioPath: string, shown: string, io: Io): Recorder | null {
  const limitText = flags.get("record-limit") as string | undefined;
  const file = flags.get("record") as string | undefined;
  if (file === undefined) {
    if (limitText !== undefined) throw new UsageError("--record-limit: give --record FILE too");
    return null;
  }
  let mib = DEFAULT_RECORD_LIMIT_MIB;
  if (limitText !== undefined) {
    if (!/^[0-9]+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > RECORD_LIMIT_MAX_MIB) {
      throw new UsageError(`--record-limit: "${limitText}" is not a size in MiB from 1 to ${RECORD_LIMIT_MAX_MIB}`);
    }
    mib = Number(limitText);
  }
  const path = resolve(io.cwd, file);
  const refused = unwritable(path);
  if (refused !== null) throw new UsageError(`--record: ${refused}`);
  const text = readConfigText(scenarioPath, shown);
  if (!text.ok) throw new UsageError(`${shown}: ${text.errors.map((e) => e.message).join("; ")}`);
  // A scenario that names a policy file: that file's text too (loadScenario has read it already).
  const data = readConfigFile(scenarioPath, shown);
  const policy = data.ok && typeof data.data === "object" && data.data !== null ? (data.data as { policy?: unknown }).policy : undefined;
  let policyText: string | undefined;
  if (typeof policy === "string") {
    const p = readConfigText(isAbsolute(policy) ? policy : resolve(dirname(scenarioPath), policy), policy);
    if (!p.ok) throw new UsageError(`${shown}: policy: ${p.errors.map((e) => e.message).join("; ")}`);
    policyText = p.text;
  }
  try {
    return new Recorder(path, { smcvisor: versionLine().replace(/^smcvisor /, ""), config: { kind: "scenario", name: shown, text: text.text, ...(policyText !== undefined ? { policyText } : {}) } }, { limitBytes: mib * 1024 * 1024, log: io.err });
  } catch (e) {
    throw new UsageError(`--record: cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

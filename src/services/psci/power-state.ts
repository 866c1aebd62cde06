/**
 * CPU_SUSPEND's power_state parameter, DEN0022 §5.4.2. Two formats; which one an implementation uses is
 * reported by PSCI_FEATURES(CPU_SUSPEND) bit 1.
 *   original: StateID [15:0], StateType [16] (1 = power-down), PowerLevel [25:24]; other bits zero
 *   extended: StateID [27:0], StateType [30]; bits 31 and 29:28 zero
 */
export type PowerStateFormat = "original" | "extended";

export interface PowerState {
  readonly powerDown: boolean;
  /** PowerLevel (original format) or 0 (extended: the level is in the implementation's StateID). */
  readonly level: number;
  readonly stateId: number;
}

/** Highest power level a virtual core can be asked to power down at: core (0) or cluster (1). */
export const MAX_POWER_LEVEL = 1;

/** Decodes a power_state, or returns null when it is not valid for this implementation (INVALID_PARAMETERS). */
export function decodePowerState(value: number, format: PowerStateFormat): PowerState | null {
  const v = value >>> 0;
  if (format === "original") {
    if ((v & 0xfcfe_0000) !== 0) return null; // bits 31:26 and 23:17 are reserved
    const level = (v >>> 24) & 3;
    if (level > MAX_POWER_LEVEL) return null;
    return { powerDown: (v & 0x1_0000) !== 0, level, stateId: v & 0xffff };
  }
  if ((v & 0xb000_0000) !== 0) return null; // bits 31 and 29:28 are reserved
  return { powerDown: (v & 0x4000_0000) !== 0, level: 0, stateId: v & 0x0fff_ffff };
}

/** One function of an interface: its SMC32 and/or SMC64 identifiers. */
export interface FunctionDef {
  readonly smc32?: number;
  readonly smc64?: number;
}

export type FunctionTable = Readonly<Record<string, FunctionDef>>;

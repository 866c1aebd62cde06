/**
 * Linux's arm64 hyp stub, served by smcvisor once a handover VM's kernel has handed EL2 over
 * (docs/handover.md). Before the handover the kernel's own stub (arch/arm64/kernel/hyp-stub.S) answers the
 * kernel's HVCs at EL2; after it the shim owns EL2 and the kernel's later stub calls come here, with the
 * numbers and return values of arch/arm64/include/asm/virt.h: x0 below HVC_STUB_HCALL_NR selects a stub
 * call, 0 is success and HVC_STUB_ERR anything the stub does not do.
 *
 * The one rule that differs from the stub's: nothing the kernel names ever runs at EL2 again. The stub
 * would install any vector table (HVC_SET_VECTORS), upgrade the kernel to VHE (HVC_FINALISE_EL2) and branch
 * to any address at EL2 (HVC_SOFT_RESTART); here vectors other than the shim's are refused, FINALISE_EL2 is
 * refused as the stub refuses it on a CPU without VHE, and a soft restart enters its entry point at EL1,
 * behind stage 2, with the arguments where the stub puts them. Pure: the machine applies the answer.
 */

/** virt.h: the stub's calls. */
export const HVC_SET_VECTORS = 0n;
export const HVC_SOFT_RESTART = 1n;
export const HVC_RESET_VECTORS = 2n;
export const HVC_FINALISE_EL2 = 3n;
export const HVC_STUB_HCALL_NR = 4n;
/** virt.h: what the stub returns for a call it does not make. */
export const HVC_STUB_ERR = 0xbad_ca11n;

/**
 * An HVC whose x0 is below this is a stub call, not an SMCCC function ID: every fast-call ID has bit 31 set
 * (SMCCC, Arm DEN0028, §2.5) and the yielding-call IDs from 0 up are reserved for interfaces older than
 * SMCCC (its table of function ID ranges), so the kernel's stub calls (0-3) and the values just above them
 * are told apart from SMCCC calls without ambiguity, as virt.h's own comment relies on.
 */
export const STUB_CALL_LIMIT = 0x1000n;

export type StubAnswer =
  /** Resume after the HVC with x0 = value. */
  | { readonly kind: "return"; readonly x0: bigint; readonly rule: StubRule; readonly note: string }
  /** HVC_SOFT_RESTART: the vCPU enters `entry` at EL1, MMU off, with x0..x2 = `args` (the stub's x2..x4). */
  | { readonly kind: "restart"; readonly entry: bigint; readonly args: readonly [bigint, bigint, bigint]; readonly rule: StubRule; readonly note: string };

/** The trace's rule for each kind of stub call (a fixed set: never text the guest chose). */
export type StubRule = "hyp-stub:HVC_SET_VECTORS" | "hyp-stub:HVC_SOFT_RESTART" | "hyp-stub:HVC_RESET_VECTORS" | "hyp-stub:HVC_FINALISE_EL2" | "hyp-stub:unknown";

export interface HypStubOptions {
  /** The shim's vector table (the only VBAR_EL2 a handed-over kernel may name: the one it handed over to). */
  readonly shimVectors: bigint;
  /** The VM's RAM (IPAs): where a soft restart may enter. */
  readonly ram: { readonly base: bigint; readonly size: bigint };
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** One handed-over kernel's stub state: which vectors it believes VBAR_EL2 holds. */
export class HypStub {
  /** "smcvisor": the shim's vectors (after the handover, and after SET_VECTORS naming them); "stub": after RESET_VECTORS. */
  vectors: "smcvisor" | "stub" = "smcvisor";

  constructor(private readonly opts: HypStubOptions) {}

  /** Whether an HVC with this x0 is a stub call (x0 < STUB_CALL_LIMIT). */
  static isStubCall(x0: bigint): boolean {
    return x0 >= 0n && x0 < STUB_CALL_LIMIT;
  }

  /** One stub call: x = x0..x4 of the HVC. */
  call(x: readonly bigint[]): StubAnswer {
    const [x0 = 0n, x1 = 0n, x2 = 0n, x3 = 0n, x4 = 0n] = x;
    switch (x0) {
      case HVC_SET_VECTORS:
        if (x1 === this.opts.shimVectors) {
          this.vectors = "smcvisor";
          return { kind: "return", x0: 0n, rule: "hyp-stub:HVC_SET_VECTORS", note: "HVC_SET_VECTORS: smcvisor's vectors, already VBAR_EL2" };
        }
        return { kind: "return", x0: HVC_STUB_ERR, rule: "hyp-stub:HVC_SET_VECTORS", note: `HVC_SET_VECTORS ${hex(x1)} refused: EL2 stays smcvisor's, no guest code runs there` };
      case HVC_RESET_VECTORS:
        // The stub's "Nothing to reset!": its calls keep being answered as the stub answers them.
        this.vectors = "stub";
        return { kind: "return", x0: 0n, rule: "hyp-stub:HVC_RESET_VECTORS", note: "HVC_RESET_VECTORS: the stub's calls are answered by smcvisor as before" };
      case HVC_FINALISE_EL2:
        return { kind: "return", x0: HVC_STUB_ERR, rule: "hyp-stub:HVC_FINALISE_EL2", note: "HVC_FINALISE_EL2 refused: no VHE to give (EL2 is smcvisor's)" };
      case HVC_SOFT_RESTART: {
        const { base, size } = this.opts.ram;
        if ((x1 & 3n) !== 0n || x1 < base || x1 >= base + size) {
          return { kind: "return", x0: HVC_STUB_ERR, rule: "hyp-stub:HVC_SOFT_RESTART", note: `HVC_SOFT_RESTART to ${hex(x1)} refused: not an instruction in the VM's RAM` };
        }
        return { kind: "restart", entry: x1, args: [x2, x3, x4], rule: "hyp-stub:HVC_SOFT_RESTART", note: `HVC_SOFT_RESTART: enters ${hex(x1)} at EL1` };
      }
      default:
        return { kind: "return", x0: HVC_STUB_ERR, rule: "hyp-stub:unknown", note: `stub call ${hex(x0)} is not one of the stub's (${HVC_STUB_HCALL_NR} calls)` };
    }
  }

  /** A reset of the VM: the kernel boots at EL2 again and owns it until it hands it over again. */
  reset(): void {
    this.vectors = "smcvisor";
  }
}

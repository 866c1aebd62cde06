/**
 * True Random Number Generator firmware interface 1.0 (DEN0098), per VM. Entropy comes from the secure
 * world through the EntropySource port; when it runs dry the guest gets NO_ENTROPY and retries.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { EntropySource } from "../../router/ports.js";
import type { ServiceContext, ServiceDefinition, ServiceInstance } from "../../router/service.js";
import { TRNG_FUNCTIONS as F } from "../../smccc/functions/trng.js";
import { uuidToSmcccWords } from "../../smccc/uuid.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { OEN } from "../../smccc/owners.js";

/** TRNG return codes, DEN0098 §2.1. */
export const TRNG_RET = { SUCCESS: 0, NOT_SUPPORTED: -1, INVALID_PARAMETERS: -2, NO_ENTROPY: -3 } as const;

export const TRNG_VERSION_1_0 = 0x1_0000;
const MAX_BITS_32 = 96;
const MAX_BITS_64 = 192;

/**
 * No reset(): the service keeps nothing per boot. DEN0098 gives the caller no state (every TRNG_RND is
 * answered on its own), and the entropy source and its budget belong to the secure world, shared by all VMs.
 */
export class TrngService implements ServiceInstance {
  private readonly implemented: Set<number>;
  private readonly uuid: [number, number, number, number] | null;
  private readonly bytes = new Uint8Array(24);

  constructor(vm: VmConfig, private readonly source: EntropySource | undefined) {
    this.implemented = new Set([F.TRNG_VERSION.smc32, F.TRNG_FEATURES.smc32, F.TRNG_GET_UUID.smc32, F.TRNG_RND32.smc32]);
    if (!vm.aarch32) this.implemented.add(F.TRNG_RND64.smc64);
    this.uuid = source ? uuidToSmcccWords(source.uuid) : null;
  }

  features(fid: number): number {
    return this.source !== undefined && this.implemented.has(fid) ? 0 : -1;
  }

  /** TRNG_VERSION and TRNG_GET_UUID answer the same every time, as does any ID the VM does not have. */
  fixed(fid: number): boolean {
    return fid === F.TRNG_VERSION.smc32 || fid === F.TRNG_GET_UUID.smc32 || this.features(fid) < 0;
  }

  handle(call: SmcCall, res: SmcResult): void {
    const fid = call.fid;
    if (this.features(fid) < 0) return res.ret(TRNG_RET.NOT_SUPPORTED);
    switch (fid) {
      case F.TRNG_VERSION.smc32:
        return res.ret(TRNG_VERSION_1_0);
      case F.TRNG_FEATURES.smc32:
        return res.ret(this.features(call.w(1)) >= 0 ? TRNG_RET.SUCCESS : TRNG_RET.NOT_SUPPORTED);
      case F.TRNG_GET_UUID.smc32:
        for (let i = 0; i < 4; i++) res.set(i, this.uuid![i]!);
        return;
      case F.TRNG_RND32.smc32:
        return this.rnd(res, call.w(1), 32, MAX_BITS_32);
      case F.TRNG_RND64.smc64:
        return this.rnd(res, call.x(1) > 0xffff_ffffn ? 0xffff_ffff : call.w(1), 64, MAX_BITS_64);
    }
    res.ret(TRNG_RET.NOT_SUPPORTED);
  }

  /**
   * TRNG_RND (DEN0098 §2.5): N bits in x1:x2:x3 (w1:w2:w3 for RND32), the lowest in x3, unused upper
   * bits zero. N = 0 or more than the maximum is INVALID_PARAMETERS.
   */
  private rnd(res: SmcResult, n: number, width: 32 | 64, max: number): void {
    if (n === 0 || n > max) return res.ret(TRNG_RET.INVALID_PARAMETERS);
    const wordsNeeded = Math.ceil(n / 32);
    const buf = this.bytes.subarray(0, wordsNeeded * 4);
    if (!this.source!.fill(buf)) return res.ret(TRNG_RET.NO_ENTROPY);
    res.ret(TRNG_RET.SUCCESS);
    // 32-bit word k (k = 0 lowest) of the N-bit value; words above N are zero, the top one masked.
    const word = (k: number): number => {
      if (k >= wordsNeeded) return 0;
      const v = (buf[4 * k]! | (buf[4 * k + 1]! << 8) | (buf[4 * k + 2]! << 16) | (buf[4 * k + 3]! << 24)) >>> 0;
      const bits = n - 32 * k;
      return bits >= 32 ? v : (v & ((1 << bits) - 1)) >>> 0;
    };
    if (width === 32) {
      res.set(3, word(0));
      res.set(2, word(1));
      res.set(1, word(2));
    } else {
      res.setWords(3, word(0), word(1));
      res.setWords(2, word(2), word(3));
      res.setWords(1, word(4), word(5));
    }
    buf.fill(0);
  }
}

export const TRNG_SERVICE: ServiceDefinition = {
  name: "trng",
  enabled: (vm) => vm.services.trng,
  claims: (vm): ServiceClaim[] => [{ service: "trng", owner: OEN.STD_SECURE, types: vm.aarch32 ? [CALL_TYPE.fast32] : [CALL_TYPE.fast32, CALL_TYPE.fast64], first: 0x50, last: 0x5f }],
  create: (ctx: ServiceContext) => new TrngService(ctx.vm, ctx.ports.entropy),
};

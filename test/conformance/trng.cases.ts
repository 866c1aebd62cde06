/** TRNG conformance cases (DEN0098 1.0). */
import { TRNG_FUNCTIONS as T } from "../../src/smccc/functions/trng.js";
import { uuidToSmcccWords } from "../../src/smccc/uuid.js";
import { MODEL_TRNG_UUID } from "../../src/firmware/monitor/entropy.js";
import type { Case, Params } from "./case.js";

const R = { SUCCESS: 0, NOT_SUPPORTED: -1, INVALID_PARAMETERS: -2, NO_ENTROPY: -3 } as const;
const ALL = 0xffff_ffff_ffff_ffffn;

export function trngCases(p: Params): Case[] {
  const cases: Case[] = [];
  const uuid = uuidToSmcccWords(MODEL_TRNG_UUID).map(BigInt);
  cases.push({ name: "DEN0098 TRNG_VERSION: 1.0", steps: [{ vcpu: 0, fid: T.TRNG_VERSION.smc32, ret: 0x1_0000 }] });
  cases.push({
    name: "DEN0098 TRNG_FEATURES: the implemented functions are 0, others NOT_SUPPORTED",
    steps: [
      { vcpu: 0, fid: T.TRNG_FEATURES.smc32, args: [T.TRNG_VERSION.smc32], ret: R.SUCCESS },
      { vcpu: 0, fid: T.TRNG_FEATURES.smc32, args: [T.TRNG_GET_UUID.smc32], ret: R.SUCCESS },
      { vcpu: 0, fid: T.TRNG_FEATURES.smc32, args: [T.TRNG_RND32.smc32], ret: R.SUCCESS },
      { vcpu: 0, fid: T.TRNG_FEATURES.smc32, args: [T.TRNG_RND64.smc64], ret: p.aarch32 ? R.NOT_SUPPORTED : R.SUCCESS },
      { vcpu: 0, fid: T.TRNG_FEATURES.smc32, args: [0x8400_0054], ret: R.NOT_SUPPORTED },
    ],
  });
  cases.push({ name: "DEN0098 TRNG_GET_UUID: the entropy source's UUID in w0-w3, SMCCC byte order", steps: [{ vcpu: 0, fid: T.TRNG_GET_UUID.smc32, regs: { 0: uuid[0]!, 1: uuid[1]!, 2: uuid[2]!, 3: uuid[3]! } }] });
  cases.push({
    name: "DEN0098 TRNG_RND32: N bits in w1:w2:w3, lowest in w3, unused upper bits zero",
    steps: [
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [96], ret: R.SUCCESS, nonZero: [1, 2, 3] },
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [1], ret: R.SUCCESS, regs: { 1: 0n, 2: 0n }, clearBits: { 3: ALL ^ 1n } },
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [33], ret: R.SUCCESS, regs: { 1: 0n }, clearBits: { 2: ALL ^ 1n, 3: ALL ^ 0xffff_ffffn } },
    ],
  });
  cases.push({
    name: "DEN0098 TRNG_RND: N = 0 or above the maximum is INVALID_PARAMETERS",
    steps: [
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [0], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [97], ret: R.INVALID_PARAMETERS },
      ...(p.aarch32 ? [] : [{ vcpu: 0, fid: T.TRNG_RND64.smc64, args: [0], ret: R.INVALID_PARAMETERS }, { vcpu: 0, fid: T.TRNG_RND64.smc64, args: [193], ret: R.INVALID_PARAMETERS }]),
    ],
  });
  if (!p.aarch32) {
    cases.push({
      name: "DEN0098 TRNG_RND64: N = 192 fills x1..x3",
      steps: [{ vcpu: 0, fid: T.TRNG_RND64.smc64, args: [192], ret: R.SUCCESS, nonZero: [1, 2, 3] }],
    });
    cases.push({
      name: "DEN0098 TRNG_RND64: with N = 1 only bit 0 of x3 may be set",
      steps: [{ vcpu: 0, fid: T.TRNG_RND64.smc64, args: [1], ret: R.SUCCESS, regs: { 1: 0n, 2: 0n }, clearBits: { 3: ALL ^ 1n } }],
    });
    cases.push({
      name: "DEN0098 TRNG_RND64: N = 65 uses x3 and bit 0 of x2",
      steps: [{ vcpu: 0, fid: T.TRNG_RND64.smc64, args: [65], ret: R.SUCCESS, regs: { 1: 0n }, clearBits: { 2: ALL ^ 1n } }],
    });
  } else {
    cases.push({ name: "SMCCC TRNG_RND64 from AArch32: an SMC64 ID is NOT_SUPPORTED", steps: [{ vcpu: 0, fid: T.TRNG_RND64.smc64, args: [64], ret: R.NOT_SUPPORTED }] });
  }
  cases.push({
    name: "DEN0098 TRNG_RND: NO_ENTROPY is passed on when the source runs dry",
    needs: ["entropy-budget"],
    entropyBudget: 8,
    steps: [
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [64], ret: R.SUCCESS },
      { vcpu: 0, fid: T.TRNG_RND32.smc32, args: [32], ret: R.NO_ENTROPY },
    ],
  });
  return cases;
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FFA_PARTITION_PROP, FFA_VERSION_1_0, FFA_VERSION_1_1, FFA_VERSION_1_2 } from "./abi.js";
import {
  canonicalUuid,
  decodePartitionInfo,
  encodePartitionInfo,
  ffaUuidFromRegs,
  ffaUuidFromWords,
  ffaUuidRegs,
  ffaUuidWords,
  partitionInfoSize,
  type FfaPartitionInfo,
} from "./partition-info.js";

/** OP-TEE's FF-A UUID (Linux drivers/tee/optee/ffa_abi.c UUID_INIT(0x486178e0, 0xe7f8, 0x11e3, ...)). */
const OPTEE = "486178e0-e7f8-11e3-bc5e-0002a5d5c51b";

describe("UUID words as Linux packs them (export_uuid into u32[4], little-endian)", () => {
  it("OP-TEE's UUID gives the words Linux 6.1 passes in w1-w4", () => {
    expect(ffaUuidWords(OPTEE)).toEqual([0xe0786148, 0xe311f8e7, 0x02005ebc, 0x1bc5d5a5]);
    expect(ffaUuidFromWords([0xe0786148, 0xe311f8e7, 0x02005ebc, 0x1bc5d5a5])).toBe(OPTEE);
  });

  it("a UUID whose first word is 0xFFFFFFFF is a valid FF-A UUID (no SMCCC Call UID restriction)", () => {
    expect(ffaUuidWords("ffffffff-0000-0000-0000-000000000001")[0]).toBe(0xffff_ffff);
  });

  it("two words per 64-bit register for PARTITION_INFO_GET_REGS and DIRECT_REQ2", () => {
    const [lo, hi] = ffaUuidRegs(OPTEE);
    expect(lo).toBe(0xe311f8e7_e0786148n);
    expect(hi).toBe(0x1bc5d5a5_02005ebcn);
    expect(ffaUuidFromRegs(lo, hi)).toBe(OPTEE);
  });

  it("round-trips any UUID through words and registers", () => {
    fc.assert(
      fc.property(fc.uuid(), (u) => {
        expect(ffaUuidFromWords(ffaUuidWords(u))).toBe(u.toLowerCase());
        const [lo, hi] = ffaUuidRegs(u);
        expect(ffaUuidFromRegs(lo, hi)).toBe(u.toLowerCase());
      }),
    );
  });

  it("canonicalUuid lower-cases and refuses what is not a UUID", () => {
    expect(canonicalUuid(OPTEE.toUpperCase())).toBe(OPTEE);
    expect(canonicalUuid("not-a-uuid")).toBeUndefined();
  });
});

describe("partition information descriptors", () => {
  const sp: FfaPartitionInfo = {
    id: 0x8001,
    executionContexts: 4,
    properties: FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.AARCH64,
    uuid: OPTEE,
  };

  it("v1.0: 8 bytes, no UUID", () => {
    expect(partitionInfoSize(FFA_VERSION_1_0)).toBe(8);
    const b = encodePartitionInfo([sp], FFA_VERSION_1_0);
    expect(Array.from(b)).toEqual([0x01, 0x80, 0x04, 0x00, 0x01, 0x01, 0x00, 0x00]);
  });

  it("v1.1 and v1.2: 24 bytes, the UUID in string order at 8", () => {
    expect(partitionInfoSize(FFA_VERSION_1_1)).toBe(24);
    expect(partitionInfoSize(FFA_VERSION_1_2)).toBe(24);
    const b = encodePartitionInfo([sp], FFA_VERSION_1_1);
    expect(Array.from(b.slice(8, 12))).toEqual([0x48, 0x61, 0x78, 0xe0]);
    expect(decodePartitionInfo(b, 1, 24)).toEqual([sp]);
  });

  it("round-trips several partitions in both layouts", () => {
    const arb = fc.record({
      id: fc.integer({ min: 0, max: 0xffff }),
      executionContexts: fc.integer({ min: 0, max: 0xffff }),
      properties: fc.nat().map((x) => x >>> 0),
      uuid: fc.uuid().map((u) => u.toLowerCase()),
    });
    fc.assert(
      fc.property(fc.array(arb, { maxLength: 8 }), (infos) => {
        expect(decodePartitionInfo(encodePartitionInfo(infos, FFA_VERSION_1_2), infos.length, 24)).toEqual(infos);
        const v10 = decodePartitionInfo(encodePartitionInfo(infos, FFA_VERSION_1_0), infos.length, 8)!;
        expect(v10.map((p) => p.id)).toEqual(infos.map((p) => p.id));
      }),
    );
  });

  it("refuses descriptors that do not fit and unknown sizes", () => {
    const b = encodePartitionInfo([sp, sp], FFA_VERSION_1_1);
    expect(decodePartitionInfo(b, 3, 24)).toBeNull();
    expect(decodePartitionInfo(b, 1, 16)).toBeNull();
    expect(() => encodePartitionInfo([sp, sp], FFA_VERSION_1_1, new Uint8Array(47))).toThrow(RangeError);
  });
});

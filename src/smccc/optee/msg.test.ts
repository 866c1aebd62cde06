import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OPTEE_FUNCTIONS } from "../functions/optee.js";
import { uuidBytes } from "../uuid.js";
import { isRpc, MAX_PARAMS, MSG_HEADER_SIZE, OPTEE_RET, OPTEE_RPC_PREFIX, OPTEE_SMC, PAGE_SIZE } from "./abi.js";
import { decodeMsg, encodeMsg, headerNumParams, MsgBuf, msgSize, PARAM_A, PARAM_ATTR, PARAM_B, PARAM_C, uuidFromBytes, uuidFromValues, uuidToValues, type MsgArg } from "./msg.js";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const msgArb = fc.record({
  cmd: u32,
  func: u32,
  session: u32,
  cancelId: u32,
  ret: u32,
  retOrigin: u32,
  params: fc.array(fc.record({ attr: u64, a: u64, b: u64, c: u64 }), { maxLength: 8 }),
});

describe("OP-TEE SMC function IDs (optee_smc.h)", () => {
  it("are the ABI reference's IDs, every one SMC32 with OEN 50 (fast), 63 (API queries) or yielding", () => {
    // OPTEE_SMC is derived from the ABI reference: the same IDs under the short names, none besides.
    expect(Object.keys(OPTEE_SMC).map((k) => `OPTEE_SMC_${k}`)).toEqual(Object.keys(OPTEE_FUNCTIONS));
    for (const [name, def] of Object.entries(OPTEE_FUNCTIONS)) {
      expect(OPTEE_SMC[name.replace(/^OPTEE_SMC_/, "") as keyof typeof OPTEE_SMC], name).toBe(def.smc32);
      expect(def.smc32 & 0x4000_0000, `${name} is SMC32`).toBe(0);
      const oen = (def.smc32 >>> 24) & 0x3f;
      if (def.smc32 & 0x8000_0000) expect([50, 63]).toContain(oen);
      else expect(def.smc32 >>> 24).toBe(0x32);
    }
  });

  it("tells RPC returns from results: 0xFFFF0000 | func, but not UNKNOWN_FUNCTION (0xFFFFFFFF)", () => {
    expect(isRpc(OPTEE_RPC_PREFIX | 5)).toBe(true);
    expect(isRpc(OPTEE_RPC_PREFIX)).toBe(true);
    expect(isRpc(OPTEE_RET.UNKNOWN_FUNCTION)).toBe(false);
    expect(isRpc(-1)).toBe(false);
    for (const code of Object.values(OPTEE_RET).filter((c) => c !== OPTEE_RET.UNKNOWN_FUNCTION)) expect(isRpc(code)).toBe(false);
  });
});

describe("struct optee_msg_arg codec", () => {
  it("lays out the header as optee_msg.h: cmd @0, func @4, session @8, cancel_id @12, ret @20, ret_origin @24, num_params @28", () => {
    const m: MsgArg = { cmd: 1, func: 2, session: 3, cancelId: 4, ret: 0xffff_0006, retOrigin: 4, params: [{ attr: 0x103n, a: 0x1122_3344_5566_7788n, b: 9n, c: 10n }] };
    const b = encodeMsg(m);
    const dv = new DataView(b.buffer);
    expect([0, 4, 8, 12, 16, 20, 24, 28].map((o) => dv.getUint32(o, true))).toEqual([1, 2, 3, 4, 0, 0xffff_0006, 4, 1]);
    expect(dv.getBigUint64(32, true)).toBe(0x103n);
    expect(dv.getBigUint64(40, true)).toBe(0x1122_3344_5566_7788n);
    expect(dv.getBigUint64(48, true)).toBe(9n);
    expect(dv.getBigUint64(56, true)).toBe(10n);
    expect(b.length).toBe(msgSize(1));
    expect(headerNumParams(b)).toBe(1);
  });

  it("fits 127 parameters and the header in one 4 KiB page (OPTEE_MSG_GET_ARG_SIZE)", () => {
    expect(msgSize(MAX_PARAMS)).toBe(PAGE_SIZE);
    expect(msgSize(0)).toBe(MSG_HEADER_SIZE);
  });

  it("decodes what it encodes", () => {
    fc.assert(
      fc.property(msgArb, (m) => {
        expect(decodeMsg(encodeMsg(m))).toEqual(m);
      }),
    );
  });

  it("with the count the caller checked, ignores num_params in the buffer (a second fetch cannot change it)", () => {
    const b = encodeMsg({ cmd: 1, func: 0, session: 1, cancelId: 0, ret: 0, retOrigin: 0, params: [{ attr: 3n, a: 41n, b: 0n, c: 0n }] });
    new DataView(b.buffer).setUint32(28, 127, true);
    const m = decodeMsg(b, 1);
    expect(m.params).toHaveLength(1);
    expect(m.params[0]!.a).toBe(41n);
    expect(decodeMsg(b, 0).params).toEqual([]);
  });

  it("refuses to read past the buffer: a RangeError that names the sizes, never a silent short read", () => {
    const b = encodeMsg({ cmd: 0, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] });
    new DataView(b.buffer).setUint32(28, 100, true);
    expect(() => decodeMsg(b)).toThrow(/100 parameters needs 3232 bytes; have 32/);
    expect(() => decodeMsg(b, 1)).toThrow(RangeError);
  });
});

describe("MsgBuf, the hot path's codec", () => {
  const fields = [PARAM_ATTR, PARAM_A, PARAM_B, PARAM_C] as const;
  const keys = ["attr", "a", "b", "c"] as const;

  it("reads every field as decodeMsg does: halves, whole values, numbers below 2^53, types; and writes what encodeMsg would", () => {
    fc.assert(
      fc.property(msgArb, u64, (m, v) => {
        const b = new MsgBuf();
        b.bytes.set(encodeMsg(m));
        b.numParams = m.params.length;
        expect(b.size).toBe(msgSize(m.params.length));
        expect(b.used).toEqual(encodeMsg(m));
        expect([b.cmd, b.u32(4), b.u32(8), b.u32(12), b.u32(20), b.u32(24)]).toEqual([m.cmd, m.func, m.session, m.cancelId, m.ret, m.retOrigin]);
        m.params.forEach((p, i) => {
          fields.forEach((f, k) => {
            const want = p[keys[k]];
            expect(b.big(i, f)).toBe(want);
            expect(b.lo(i, f)).toBe(Number(want & 0xffff_ffffn));
            expect(b.hi(i, f)).toBe(Number(want >> 32n));
            if (want < 1n << 53n) expect(b.num(i, f)).toBe(Number(want));
          });
          expect(b.type(i)).toBe(Number(p.attr & 0xffn));
        });
        if (m.params.length === 0) return;
        // Writes, each field alone: the bytes are what encodeMsg makes of the changed message.
        const i = m.params.length - 1;
        b.setBig(i, PARAM_B, v);
        b.set64(i, PARAM_C, Number(v & 0xffff_ffffn), Number(v >> 32n));
        b.setU32(20, 0xffff_0006);
        const changed = { ...m, ret: 0xffff_0006, params: m.params.map((p, k) => (k === i ? { ...p, b: v, c: v } : p)) };
        expect(b.used).toEqual(encodeMsg(changed));
      }),
    );
  });

  it("its size is the checked count's, not the num_params in its bytes", () => {
    const b = new MsgBuf();
    b.bytes.set(encodeMsg({ cmd: 1, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] }));
    b.setU32(28, 127);
    b.numParams = 2;
    expect(b.size).toBe(msgSize(2));
    expect(b.bytes.length).toBe(msgSize(MAX_PARAMS));
  });
});

describe("UUIDs in OPEN_SESSION's META value parameters", () => {
  it("uuidFromBytes reads the octets where a and b lie in a message, as uuidFromValues reads the values", () => {
    fc.assert(
      fc.property(fc.uuid(), fc.integer({ min: 0, max: 16 }), (u, at) => {
        const [a, b] = uuidToValues(u);
        const bytes = new Uint8Array(32 + at);
        new DataView(bytes.buffer).setBigUint64(at, a, true);
        new DataView(bytes.buffer).setBigUint64(at + 8, b, true);
        expect(uuidFromBytes(bytes, at)).toBe(uuidFromValues(a, b));
      }),
    );
  });

  it("are the 16 bytes in string order, as Linux's export_uuid writes params[0].u.octets", () => {
    const uuid = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";
    const [a, b] = uuidToValues(uuid);
    const octets = new Uint8Array(16);
    new DataView(octets.buffer).setBigUint64(0, a, true);
    new DataView(octets.buffer).setBigUint64(8, b, true);
    expect(octets).toEqual(uuidBytes(uuid));
    expect(a).toBe(0xe411_5024_00f2_aa8an);
    expect(uuidFromValues(a, b)).toBe(uuid);
  });

  it("round-trip any UUID", () => {
    fc.assert(
      fc.property(fc.uuid(), (u) => {
        expect(uuidFromValues(...uuidToValues(u))).toBe(u.toLowerCase());
      }),
    );
  });
});

/**
 * A guest's access to an emulated device, as the EL2 shim reports it: the data abort's syndrome (ESR_EL2,
 * Arm ARM DDI 0487 D17.2.37, "ISS encoding for an exception from a Data Abort") says its size, direction and
 * register; the fault's IPA says where. Only accesses the syndrome describes fully (ISV = 1) can be emulated:
 * a load or store pair, a writeback form or a cache maintenance operation has ISV = 0 and is refused. Pure.
 */

/** ISS fields of a data abort (D17.2.37). */
const ISV = 1 << 24;
const SSE = 1 << 21;
const SF = 1 << 15;
const FNV = 1 << 10;
const EA = 1 << 9;
const CM = 1 << 8;
const S1PTW = 1 << 7;
const WNR = 1 << 6;
/** DFSC 0b0001LL: a translation fault at level LL (the IPA is not mapped by stage 2). */
const DFSC_TRANSLATION = 0b0001_00;

export const EC_DABT_LOWER = 0x24;

export interface MmioAccess {
  /** 1, 2, 4 or 8 bytes. */
  readonly size: 1 | 2 | 4 | 8;
  readonly write: boolean;
  /** The general-purpose register transferred (31: the zero register). */
  readonly srt: number;
  /** A load sign-extends the value to the register's width. */
  readonly signExtend: boolean;
  /** The register is 64 bits wide (else 32: the upper half is zeroed). */
  readonly sixtyFour: boolean;
}

export type DecodedAccess = { ok: true; access: MmioAccess } | { ok: false; reason: string };

/** The access a data abort's ESR_EL2 describes, or why it cannot be emulated. */
export function decodeDataAbort(esr: number): DecodedAccess {
  const ec = esr >>> 26;
  if (ec !== EC_DABT_LOWER) return { ok: false, reason: `exception class 0x${ec.toString(16)} is not a data abort from a lower EL` };
  if ((esr & ISV) === 0) return { ok: false, reason: "the syndrome does not describe the access (ISV = 0: a load/store pair, writeback or SIMD access)" };
  if ((esr & (S1PTW | CM | EA | FNV)) !== 0) return { ok: false, reason: "not a plain load or store (stage-1 walk, cache maintenance or external abort)" };
  if ((esr & 0b11_1100) !== DFSC_TRANSLATION) return { ok: false, reason: `fault status 0x${(esr & 0x3f).toString(16)} is not a stage-2 translation fault` };
  return {
    ok: true,
    access: {
      size: (1 << ((esr >>> 22) & 3)) as 1 | 2 | 4 | 8,
      write: (esr & WNR) !== 0,
      srt: (esr >>> 16) & 31,
      signExtend: (esr & SSE) !== 0,
      sixtyFour: (esr & SF) !== 0,
    },
  };
}

/** What a device answers an access: a read's value, or a refusal the guest gets as an external abort. */
export type MmioResult = { ok: true; value: bigint } | { ok: false; reason: string };

/** A device in the window: its registers at [base, base + size), offsets relative to base. */
export interface MmioDevice {
  readonly name: string;
  readonly base: bigint;
  readonly size: bigint;
  read(offset: number, size: number): MmioResult;
  write(offset: number, size: number, value: bigint): MmioResult;
}

/** The devices of one VM's window, found by address. */
export class MmioBus {
  private readonly devices: MmioDevice[] = [];

  add(d: MmioDevice): void {
    for (const o of this.devices) {
      if (d.base < o.base + o.size && o.base < d.base + d.size) throw new Error(`${d.name} overlaps ${o.name}`);
    }
    this.devices.push(d);
  }

  get list(): readonly MmioDevice[] {
    return this.devices;
  }

  /** Performs `access` at `ipa` (`value`: what a write stores, already cut to the access's size). */
  access(ipa: bigint, a: MmioAccess, value: bigint): MmioResult {
    const end = ipa + BigInt(a.size);
    const d = this.devices.find((x) => ipa >= x.base && end <= x.base + x.size);
    if (!d) return { ok: false, reason: `no device at IPA 0x${ipa.toString(16)}` };
    if (ipa % BigInt(a.size) !== 0n) return { ok: false, reason: `${d.name}: misaligned ${a.size}-byte access at 0x${ipa.toString(16)}` };
    const offset = Number(ipa - d.base);
    return a.write ? d.write(offset, a.size, value & mask(a.size)) : d.read(offset, a.size);
  }
}

export function mask(size: number): bigint {
  return (1n << BigInt(8 * size)) - 1n;
}

/** The register value a load leaves, from the device's value (sign extension and width per the syndrome). */
export function loadedValue(a: MmioAccess, value: bigint): bigint {
  let v = value & mask(a.size);
  if (a.signExtend && (v >> BigInt(8 * a.size - 1)) & 1n) v -= 1n << BigInt(8 * a.size);
  return BigInt.asUintN(a.sixtyFour ? 64 : 32, v);
}

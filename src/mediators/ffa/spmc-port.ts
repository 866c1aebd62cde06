/**
 * The mediator's FF-A calls to the SPMC: the hypervisor is FF-A endpoint 0 at the physical FF-A instance
 * (DEN0077 v1.2 §4.1), and speaks the ABI itself through SMCs (MediatorHost.secureChannel), x0-x17 with
 * their full 64 bits (v1.2 passes arguments in x0-x17, §11.2). One port per origin: the hypervisor's own
 * calls (probe, its RX/TX buffers) and one per VM (calls made for that VM, traced with it).
 */
import type { MediatorHost, SecureChannel } from "../mediator.js";

/** A MediatorHost that can also make the hypervisor's own calls through a channel (full x0-x17). */
export interface FfaMediatorHost extends MediatorHost {
  /** The hypervisor's own calls, made for no VM. Without it, secureCall carries them (x0-x7, low 32 bits). */
  hypervisorChannel?(origin: string): SecureChannel;
}

/** A SecureChannel over secureCall (x0-x7, low words only), for hosts without standing channels. */
function channelOver(host: MediatorHost, origin: string, vm: string | null): SecureChannel {
  const regs = new Uint32Array(36);
  const take = (v: number[]) => {
    regs.fill(0);
    v.forEach((x, n) => (regs[2 * n] = x >>> 0));
  };
  return {
    regs,
    call() {
      const args: number[] = [];
      for (let n = 0; n < 8; n++) {
        // secureCall carries 32-bit words: a call that needs more cannot be made this way.
        if (regs[2 * n + 1] !== 0) throw new Error(`${origin}: x${n} needs 64 bits, which secureCall does not carry`);
        args.push(regs[2 * n]!);
      }
      const r = host.secureCall(origin, vm, args);
      if (r instanceof Promise) return r.then(take);
      take(r);
      return undefined;
    },
  };
}

export class SpmcPort {
  private readonly channel: SecureChannel;

  constructor(host: FfaMediatorHost, origin: string, vm: string | null) {
    if (vm === null) this.channel = host.hypervisorChannel?.(origin) ?? channelOver(host, origin, null);
    else this.channel = host.secureChannel?.(origin, vm) ?? channelOver(host, origin, vm);
  }

  /**
   * One SMC: x0 = fid, x1.. = args (numbers are 32-bit words, bigints 64-bit), every other register up to
   * x17 zero. The answer is then read with w/x/sw. The SPMC model answers synchronously; a promise here is
   * a wiring error.
   */
  call(fid: number, ...args: (number | bigint)[]): void {
    const r = this.channel.regs;
    r.fill(0);
    r[0] = fid >>> 0;
    args.forEach((a, i) => this.set(i + 1, a));
    if (this.channel.call() !== undefined) throw new Error("the FF-A mediator needs a synchronous secure world");
  }

  /** Like call, with x1-x17 taken from `words` (x_n low at [2n], high at [2n + 1]) from x1 on. */
  callWith(fid: number, words: Uint32Array, last: number): void {
    const r = this.channel.regs;
    r.fill(0);
    r[0] = fid >>> 0;
    for (let i = 2; i < 2 * (last + 1); i++) r[i] = words[i]!;
    if (this.channel.call() !== undefined) throw new Error("the FF-A mediator needs a synchronous secure world");
  }

  private set(n: number, v: number | bigint): void {
    const r = this.channel.regs;
    if (typeof v === "bigint") {
      const u = BigInt.asUintN(64, v);
      r[2 * n] = Number(u & 0xffff_ffffn);
      r[2 * n + 1] = Number(u >> 32n);
    } else r[2 * n] = v >>> 0;
  }

  /** W_n of the answer. */
  w(n: number): number {
    return this.channel.regs[2 * n]!;
  }
  /** W_n as a signed 32-bit value (FFA_ERROR codes). */
  sw(n: number): number {
    return this.channel.regs[2 * n]! | 0;
  }
  hi(n: number): number {
    return this.channel.regs[2 * n + 1]!;
  }
  x(n: number): bigint {
    return (BigInt(this.hi(n)) << 32n) | BigInt(this.w(n));
  }
  /** The answer's register words (x_n at [2n], [2n + 1]). */
  get words(): Uint32Array {
    return this.channel.regs;
  }
}

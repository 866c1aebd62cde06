/**
 * Guest time for in-process VMs: nothing moves unless the test moves it, so runs are deterministic.
 * The counter runs at 62.5 MHz, QEMU's virt generic-timer frequency.
 */
import type { GuestTime } from "../../router/ports.js";

export const COUNTER_HZ = 62_500_000n;

export class ManualTime implements GuestTime {
  /** Nanoseconds since the VM started. */
  elapsedNs = 0n;
  /** CNTVOFF_EL2: the virtual counter is the physical one minus this. */
  virtualOffset = 0n;

  constructor(readonly bootWallClockNs = 1_700_000_000_000_000_000n) {}

  advance(ns: bigint | number): void {
    this.elapsedNs += BigInt(ns);
  }

  wallClockNs(): bigint {
    return this.bootWallClockNs + this.elapsedNs;
  }

  counter(_vcpu: number, physical: boolean): bigint {
    const phys = (this.elapsedNs * COUNTER_HZ) / 1_000_000_000n;
    return physical ? phys : phys - this.virtualOffset;
  }
}

/**
 * Which vCPUs of a handover VM have handed EL2 over, and whether any CPU is still running the kernel with
 * EL2 its own (docs/handover.md, "More than one vCPU"). Pure: the VM feeds it the handovers and the
 * machine's own PSCI answers, and asks whether the VM is contained.
 *
 * smcvisor cannot see the secondaries a kernel started before the handover (through the machine's PSCI,
 * untrapped), so at each handover it asks the machine's PSCI, through the shim, AFFINITY_INFO (DEN0022
 * §5.7) for every vCPU that has not handed over: one reported anything but OFF is running the kernel at EL2
 * (or about to) and must hand over too. The VM is contained once no question is open and every vCPU the
 * machine reported running has handed over. The last handover's questions are asked after every running
 * CPU is smcvisor's, so no CPU can be started unseen between them and the answer.
 */

/** DEN0022 §5.7, AFFINITY_INFO: the machine's answer for a CPU that is off (ON is 0, ON_PENDING 2). */
export const AFFINITY_OFF = 1;

export class HandoverRoll {
  /** Per vCPU: it handed EL2 over in this boot. */
  readonly handedOver: boolean[];
  /** vCPUs the machine's PSCI reported running that have not handed over (yet). */
  private readonly kept = new Set<number>();
  /** AFFINITY_INFO questions sent to the machine and not yet answered. */
  private open = 0;

  constructor(readonly vcpus: number) {
    if (!Number.isInteger(vcpus) || vcpus < 1) throw new RangeError(`handover roll: ${vcpus} vCPUs`);
    this.handedOver = new Array<boolean>(vcpus).fill(false);
  }

  /** Whether any vCPU has handed over in this boot. */
  get started(): boolean {
    return this.handedOver.some((h) => h);
  }

  /**
   * vCPU `vcpu` handed over. Returns the vCPUs to ask the machine about (those that have not handed over),
   * or null when this vCPU had already handed over in this boot (a protocol error: the shim sends one
   * HANDOVER per CPU and boot).
   */
  handover(vcpu: number): number[] | null {
    this.check(vcpu);
    if (this.handedOver[vcpu]) return null;
    this.handedOver[vcpu] = true;
    this.kept.delete(vcpu);
    const ask: number[] = [];
    for (let i = 0; i < this.vcpus; i++) if (!this.handedOver[i]) ask.push(i);
    this.open += ask.length;
    return ask;
  }

  /** The machine's AFFINITY_INFO answer (its x0, as a signed 32-bit value) for vCPU `vcpu`, asked at a handover. */
  answered(vcpu: number, affinity: number): void {
    this.check(vcpu);
    if (this.open > 0) this.open--;
    // A vCPU that handed over meanwhile runs, under smcvisor: nothing to wait for.
    if (this.handedOver[vcpu]) return;
    if (affinity === AFFINITY_OFF) this.kept.delete(vcpu);
    else this.kept.add(vcpu);
  }

  /** Every running vCPU has handed over and no question is open: no CPU of the VM runs the kernel at EL2. */
  get contained(): boolean {
    return this.started && this.open === 0 && this.kept.size === 0;
  }

  /** vCPUs known to run the kernel with EL2 its own (reported running, not handed over), ascending. */
  get keptEl2(): number[] {
    return [...this.kept].sort((a, b) => a - b);
  }

  /** The vCPUs that handed over in this boot, ascending. */
  get list(): number[] {
    const out: number[] = [];
    this.handedOver.forEach((h, i) => h && out.push(i));
    return out;
  }

  /** A new boot: the kernel owns EL2 on every CPU again. */
  reset(): void {
    this.handedOver.fill(false);
    this.kept.clear();
    this.open = 0;
  }

  private check(vcpu: number): void {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpus) throw new RangeError(`handover roll: no vCPU ${vcpu} (the VM has ${this.vcpus})`);
  }
}

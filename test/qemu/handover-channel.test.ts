// The handover's channel boundary: a HANDOVER request from a shim whose VM is not a handover VM (a broken
// or subverted shim: the real one sends it only after RESUME_EL2, which needs the host page's HOST_HANDOVER)
// ends that VM with the reason, and the other VM goes on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { emptyReport, parseGuestLine, writeScriptImage, type GuestReport, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import { encodeRequest, MAILBOX, REQ } from "../../src/machine/qemu/channel.js";
import { HANDOVER_VECTORS } from "../../src/machine/qemu/layout.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import { parseConfigText } from "../../src/policy/load.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-handover-channel-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("a HANDOVER request from a VM that is no handover VM ends that VM only", async () => {
  const cfg = parseConfigText("vms:\n  victim:\n    vcpus: 1\n  survivor:\n    vcpus: 1\n");
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const calls = (n: number, last: ScriptStep[]): ScriptStep[] => [...Array.from({ length: n }, () => ({ vcpu: 0, conduit: "hvc" as const, regs: [0x8400_0000n] })), ...last];
  // The victim calls for ever (until it is ended); the survivor makes 400 calls and powers off.
  const steps = { victim: calls(1, []), survivor: calls(400, [{ vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true }]) };
  const images = new Map<string, { kernel: string }>();
  const reports = new Map<string, GuestReport>();
  for (const [name, s] of Object.entries(steps)) {
    const image = join(dir, `${name}.img`);
    writeScriptImage(image, s, name === "victim" ? 1_000_000_000 : 0, { aarch32: false });
    images.set(name, { kernel: image });
    reports.set(name, emptyReport());
  }
  let sent = false;
  const m = await QemuMachine.create(cfg.value, {
    images,
    console: (vm, text) => {
      parseGuestLine(text, reports.get(vm)!);
      if (!sent && vm === "survivor" && text.startsWith("SMCV-STEP 5 ")) {
        sent = true;
        // A well-formed HANDOVER, as the shim sends it after a kernel booted at EL2 calls its vectors.
        const mb = m.vm("victim").mailbox(0);
        const words = new Int32Array(mb.buffer, mb.byteOffset, 4);
        const seq = Atomics.load(words, MAILBOX.reqSeq / 4) + 1;
        mb.set(encodeRequest({ type: REQ.HANDOVER, vcpu: 0, esr: 0x5a00_0000, elr: 0x4020_0000n, spsr: 0x3c5n, far: 0n, cntvct: 0n, localCalls: 0n, regs: [0n, HANDOVER_VECTORS] }), MAILBOX.request);
        Atomics.store(words, MAILBOX.reqSeq / 4, seq);
        m.vm("victim").doorbellRang(0, 1);
      }
    },
  });
  const exits = new Map((await m.run(60_000)).map((e) => [e.name, e]));
  expect(sent).toBe(true);
  expect(exits.get("victim")).toMatchObject({ state: "failed", reason: expect.stringContaining("protocol error: an unexpected HANDOVER request") });
  expect(exits.get("survivor")).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
  // Nothing was traced as a handover for the victim.
  expect(m.hypervisor.router.trace.events().some((e) => e.vm === "victim" && e.rule.includes("hyp-stub"))).toBe(false);
}, 90_000);

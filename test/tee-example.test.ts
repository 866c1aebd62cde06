// examples/tee.yaml: two VMs share one OP-TEE through the mediator, a third has no TEE. The example is
// valid, and what its comments promise holds in-process.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { configCommand } from "../src/cli/config-check.js";
import { chacha20 } from "../src/firmware/optee/chacha20.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT } from "../src/firmware/optee/tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "../src/firmware/optee/tas/hello-world.js";
import { RNG_TA_UUID } from "../src/firmware/optee/tas/rng.js";
import { ScriptedMachine } from "../src/machine/scripted/machine.js";
import { parseConfigText } from "../src/policy/load.js";
import { OPTEE_MSG_UID, OPTEE_SMC, SEC_CAP, TEEC } from "../src/smccc/optee/abi.js";
import { interleave, OpteeGuest, param } from "./support/optee-guest.js";

const ROOT = resolve(import.meta.dirname, "..");
const FILE = "examples/tee.yaml";

function load() {
  const parsed = parseConfigText(readFileSync(resolve(ROOT, FILE), "utf8"), "yaml");
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return parsed.value;
}

describe("examples/tee.yaml", () => {
  it("is valid for `smcvisor config check`", () => {
    const out: string[] = [];
    const code = configCommand(["check", FILE], { out: (l) => out.push(l), err: (l) => out.push(l), cwd: ROOT });
    expect(out).toEqual([`${FILE}: valid (3 VMs: media, apps, tools)`]);
    expect(code).toBe(0);
  });

  it("gives media and apps the TEE with their own keys, and tools none", () => {
    const config = load();
    expect(config.platform.tee).toEqual({ os: "optee", threads: 8, maxGuests: 2, limits: { callsInFlight: 4, registrations: 64, pages: 4096, sessions: 256 } });
    // No starvation: every VM's calls in flight together fit OP-TEE's threads.
    const withTee = config.vms.filter((v) => v.tee);
    expect(withTee.length * config.platform.tee!.limits.callsInFlight).toBeLessThanOrEqual(config.platform.tee!.threads);
    const m = ScriptedMachine.fromConfig(config);
    expect([...m.hypervisor.optee!.guests.keys()]).toEqual([1, 2]);
    expect(m.vm("tools").vcpu(0).smc(OPTEE_SMC.CALLS_UID).x0).toBe(0xffff_ffffn);
    expect(m.vm("media").vcpu(0).smc(OPTEE_SMC.CALLS_UID).regs.slice(0, 4)).toEqual(OPTEE_MSG_UID.map(BigInt));
  });

  it("runs the driver's probe, hello world and content decryption in both VMs at once, each with its own result", () => {
    const config = load();
    const m = ScriptedMachine.fromConfig(config);
    const plain = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 11 + 3) & 0xff);
    function* session(g: OpteeGuest, key: Uint8Array, start: number) {
      const info = yield* g.probe();
      const hello = (yield* g.openSession(HELLO_WORLD_UUID)).session;
      const inc = yield* g.invoke(hello, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(start)]);
      yield* g.closeSession(hello);
      const s = (yield* g.openSession(CONTENT_DECRYPT_UUID)).session;
      const cipher = new Uint8Array(plain.length);
      chacha20(key, new Uint8Array(12), 0, plain, cipher);
      const input = g.allocShm(plain.length);
      const output = g.allocShm(plain.length);
      input.write(cipher);
      yield* g.registerShm(input);
      yield* g.registerShm(output);
      const dec = yield* g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]);
      return { info, value: inc.msg.params[0]!.a, decrypted: dec.result === TEEC.SUCCESS ? output.read() : null };
    }
    const keys = config.vms.map((v) => v.tee?.contentKey ?? null);
    const [media, apps] = interleave([session(OpteeGuest.forVm(m.vm("media")), keys[0]!, 10), session(OpteeGuest.forVm(m.vm("apps")), keys[1]!, 20)]);
    for (const r of [media!, apps!]) {
      expect(r.info.devices).toEqual([RNG_TA_UUID]);
      expect(r.info.caps & SEC_CAP.DYNAMIC_SHM).toBe(SEC_CAP.DYNAMIC_SHM);
      expect(r.info.caps & SEC_CAP.HAVE_RESERVED_SHM).toBe(0);
      expect(r.decrypted).toEqual(plain);
    }
    expect([media!.value, apps!.value]).toEqual([11n, 21n]);
  });

  it("refuses a third VM with the TEE at start-up: OP-TEE holds two guests", () => {
    const text = readFileSync(resolve(ROOT, FILE), "utf8").replace("  tools:\n", "  tools:\n    tee: optee\n");
    expect(() => ScriptedMachine.fromText(text)).toThrow("vms.tools.tee: cannot enable optee: OP-TEE has no room for another guest (VM_CREATED answered ENOTAVAIL)");
  });
});

// The mediator conformance suite for the OP-TEE mediator against the modelled OP-TEE.
import { expect } from "vitest";
import { OPTEE_MSG_UID, OPTEE_SMC } from "../../src/smccc/optee/abi.js";
import { HELLO_WORLD_UUID } from "../../src/firmware/optee/tas/hello-world.js";
import { OpteeGuest, run } from "../support/optee-guest.js";
import { mediatorConformance } from "./suite.js";

mediatorConformance({
  name: "optee",
  platformWithTee: "  tee: { os: optee, threads: 8, maxGuests: 2 }",
  vmTee: (vm) => `{ mediator: optee, contentKey: "${vm === "a" ? "11" : "22"}${"00".repeat(31)}" }`,
  probe: {
    fid: OPTEE_SMC.CALLS_UID,
    check: (x) => expect(x.slice(0, 4).map((v) => Number(v & 0xffff_ffffn))).toEqual([...OPTEE_MSG_UID]),
  },
  claimed: [OPTEE_SMC.CALLS_UID, OPTEE_SMC.CALLS_COUNT, OPTEE_SMC.CALL_GET_OS_UUID, OPTEE_SMC.EXCHANGE_CAPABILITIES, OPTEE_SMC.CALL_WITH_ARG, OPTEE_SMC.RETURN_FROM_RPC, 0xf200_0000, 0x3f00_0001],
  hold: (vm) => {
    const g = OpteeGuest.forVm(vm);
    run(g.probe());
    run(g.openSession(HELLO_WORLD_UUID));
    const shm = g.allocShm(3 * 4096);
    run(g.registerShm(shm));
  },
  teeHeld: (m, id) => m.hypervisor.optee!.counters(id),
});

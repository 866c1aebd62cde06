/** The trusted applications the OP-TEE model ships. */
import type { TrustedApp } from "../ta.js";
import { contentDecryptTa } from "./content-decrypt.js";
import { deviceEnumPta } from "./device-enum.js";
import { helloWorldTa } from "./hello-world.js";
import { RNG_TA_UUID, rngTa } from "./rng.js";

export function defaultTas(): TrustedApp<unknown>[] {
  // The RNG TA asks for a driver on the TEE bus, so Linux's optee-rng binds to it.
  return [helloWorldTa, deviceEnumPta([RNG_TA_UUID]), rngTa, contentDecryptTa] as TrustedApp<unknown>[];
}

/** The board profiles a VM may name (`board: <name>`); each VM gets its own instance. */
import type { VmConfig } from "../../policy/load.js";
import type { BoardFirmware } from "../../router/ports.js";
import { Omap4Board } from "./omap4.js";

export const BOARDS: ReadonlyMap<string, (vm: VmConfig) => BoardFirmware> = new Map([["omap4", () => new Omap4Board()]]);

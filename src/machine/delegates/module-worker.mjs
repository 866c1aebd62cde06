// Starts a delegate module's worker thread: loads module-worker.ts through tsx, which a worker thread does
// not inherit from the thread that started it.
import { tsImport } from "tsx/esm/api";

await tsImport("./module-worker.ts", import.meta.url);

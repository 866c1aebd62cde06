#!/usr/bin/env node
// An example delegate handler in its own process, speaking smcvisor's line-delimited JSON protocol
// (docs/delegates.md) over the Unix socket named in SMCVISOR_DELEGATE_SOCKET. It counts calls per VM:
// every call returns x0 = 0 and x1 = how many calls that VM has made, x2 = the first argument plus one.
import { connect } from "node:net";
import { createInterface } from "node:readline";

const socket = connect(process.env.SMCVISOR_DELEGATE_SOCKET);
const counts = new Map();
createInterface({ input: socket }).on("line", (line) => {
  const req = JSON.parse(line);
  const n = (counts.get(req.vm) ?? 0) + 1;
  counts.set(req.vm, n);
  const x1 = BigInt(req.args[0]);
  socket.write(JSON.stringify({ id: req.id, regs: ["0x0", "0x" + n.toString(16), "0x" + (x1 + 1n).toString(16)] }) + "\n");
});
socket.on("close", () => process.exit(0));

#!/usr/bin/env node
import { run } from "./run.js";

const exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
// Exit explicitly: idle HTTP/2 sessions to the gateway would otherwise keep the process alive for a while.
process.exit(exitCode);

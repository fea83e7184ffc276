#!/usr/bin/env node
// The v6agent command; everything it does lives in src/cli/.
import { main } from "./cli/main.js";

process.exitCode = await main(process.argv);

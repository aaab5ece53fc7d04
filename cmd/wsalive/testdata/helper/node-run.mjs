// node node-run.mjs <helper.js> <node_modules dir holding ws> <http base> <ws base> [refuse]
// runs scenario.js in Node with the ws package and prints its result as JSON.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { runScenario } from "./scenario.js";

const [helperPath, nodeModules, httpBase, wsBase, mode] = process.argv.slice(2);
const { WebSocket } = createRequire(nodeModules + "/")("ws");
const { WsaliveClient } = await import(pathToFileURL(helperPath).href);
const r = await runScenario({ WsaliveClient, WebSocket, httpBase, wsBase, refuse: mode === "refuse" });
console.log(JSON.stringify(r));

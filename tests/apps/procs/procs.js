// Processes from Node: execSync through the shell, spawn with piped stdio.
const { execSync, spawn } = require("child_process");

console.log("execSync:", JSON.stringify(execSync("echo hi").toString()));
const child = spawn("/bin/sh", ["-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"], { stdio: "pipe" });
let out = "", err = "";
child.stdout.on("data", (d) => (out += d));
child.stderr.on("data", (d) => (err += d));
child.on("close", (code, signal) => {
  console.log("spawn:", JSON.stringify(out), JSON.stringify(err), code, signal);
});
child.stdin.end("piped through\n");

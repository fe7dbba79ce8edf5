// A small real app: an HTTP server that answers one request from itself,
// prints what it got, and exits.
const http = require("http");

const server = http.createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ path: req.url, method: req.method, greeting: process.env.GREETING }));
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  http.get({ host: "127.0.0.1", port, path: "/hello?from=enclave" }, (res) => {
    let body = "";
    res.on("data", (c) => (body += c));
    res.on("end", () => {
      console.log(`node ${process.versions.node.split(".")[0]}: GET -> ${res.statusCode} ${body}`);
      server.close();
    });
  });
});

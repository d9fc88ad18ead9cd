// A webhook receiver for threadline: verifies each delivery with the Standard Webhooks
// reference library (npm `standardwebhooks`), drops repeats by event id (delivery is at least
// once), answers 204 fast, and handles the event after.
//
//   WEBHOOK_SECRET=whsec_… node webhooks/receiver.mjs [port]      (default 8787)
//   threadline --webhook-url http://localhost:8787/ --webhook-secret whsec_…
//
// Make a secret with: node -e "console.log('whsec_' + require('crypto').randomBytes(32).toString('base64'))"
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("set WEBHOOK_SECRET to the endpoint's whsec_… secret");
  process.exit(2);
}
const webhook = new Webhook(secret);
const port = Number(process.argv[2] ?? 8787);
// A real receiver keeps these in its database, for longer than threadline retries (a day).
const seen = new Set();

function handle(event) {
  switch (event.type) {
    case "message.created":
      console.log(`message.created ${event.data.threadId} ${event.data.authorId}: ${event.data.body}`);
      break;
    case "member.mentioned":
      // e.g. a push notification for a user who is offline
      console.log(`member.mentioned ${event.data.userId} in ${event.data.threadId}`);
      break;
    default:
      console.log(`${event.type} ${event.id}`);
  }
}

const server = createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    let event;
    try {
      // Checks the signature and that the timestamp is recent (replays are refused).
      event = webhook.verify(body, req.headers);
    } catch (e) {
      console.error(`refused a delivery: ${e.message}`);
      res.writeHead(400).end();
      return;
    }
    res.writeHead(204).end();
    if (seen.has(event.id)) return;
    seen.add(event.id);
    handle(event);
  });
});
server.listen(port, () => console.log(`listening on http://127.0.0.1:${server.address().port}/`));

// Upload a file, then poll the stub's status route until it is ready, then download it.
//
//   node polling/upload-and-poll.mjs <file> [server] [--token JWT]
//
// Against a server in jwt mode, `--token` (or THREADLINE_TOKEN) is sent on every request.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";

const args = process.argv.slice(2);
const at = args.indexOf("--token");
const token = at === -1 ? process.env.THREADLINE_TOKEN : args.splice(at, 2)[1];
const headers = token ? { authorization: `Bearer ${token}` } : {};
const [file, server = "http://localhost:5000"] = args;
if (!file) {
  console.error("usage: node polling/upload-and-poll.mjs <file> [server]");
  process.exit(2);
}

const bytes = await readFile(file);
const form = new FormData();
form.append("file", new Blob([bytes]), basename(file));
const res = await fetch(`${server}/api/files`, { method: "POST", body: form, headers });
const uploaded = await res.json();
if (res.status !== 201) {
  console.error("upload failed:", res.status, uploaded);
  process.exit(1);
}
console.log(`uploaded ${uploaded.id} (${uploaded.status})`);

let status = uploaded;
for (let attempt = 0; status.status === "processing"; attempt++) {
  if (attempt === 100) {
    console.error("still processing after 100 polls");
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
  status = await (await fetch(`${server}/api/files/${uploaded.id}/status`, { headers })).json();
}
if (status.status !== "ready") {
  console.error("file failed:", status);
  process.exit(1);
}
console.log(`ready: ${JSON.stringify(status)}`);

const download = await fetch(server + status.url, { headers });
const downloaded = Buffer.from(await download.arrayBuffer());
if (!downloaded.equals(bytes)) {
  console.error("downloaded bytes differ from the upload");
  process.exit(1);
}
console.log(`downloaded ${downloaded.length} bytes, identical`);

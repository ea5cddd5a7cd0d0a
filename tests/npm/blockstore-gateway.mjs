// A trustless gateway of raw blocks in front of Helia's blockstore
// (blockstore-core's MemoryBlockstore, which Helia uses), the blocks put
// there by ipfs-unixfs-importer: an IPFS implementation that is not cairn
// serving the bytes cairn fetch asks for (tests/integration/test-ipfs-fetch.sh).
//   node blockstore-gateway.mjs PORT-FILE LOG CHUNK-SIZE ROOTS-OUT FILE...
// Imports each FILE (raw leaves, CIDv1, fixed-size chunks, balanced 174:
// cairn's size-N mode), writes "FILE CID" lines to ROOTS-OUT, then serves
// GET /ipfs/<cid>?format=raw (or Accept: application/vnd.ipld.raw) on
// 127.0.0.1; anything else (CARs) is 406.  LOG gets "STATUS BYTES PATH".
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { CID } from 'multiformats/cid'
import { createReadStream, appendFileSync, writeFileSync, renameSync } from 'node:fs'
import { createServer } from 'node:http'

const [portFile, log, size, rootsOut, ...files] = process.argv.slice(2)
const store = new MemoryBlockstore()
const opts = {
  rawLeaves: true,
  cidVersion: 1,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: Number(size) }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  wrapWithDirectory: false
}
let roots = ''
for (const file of files) {
  let root
  for await (const entry of importer([{ content: createReadStream(file) }], store, opts)) {
    root = entry.cid
  }
  roots += `${file} ${root.toString()}\n`
}
writeFileSync(rootsOut, roots)

async function bytesOf (got) {
  if (got instanceof Uint8Array) return got
  const parts = []
  for await (const p of got) parts.push(p)
  return Buffer.concat(parts)
}

const server = createServer(async (req, res) => {
  const send = (status, body, type) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': body.length })
    res.end(body)
    appendFileSync(log, `${status} ${body.length} ${req.url}\n`)
  }
  const url = new URL(req.url, 'http://x')
  const m = url.pathname.match(/^\/ipfs\/([a-z0-9]+)$/)
  const raw = url.searchParams.get('format') === 'raw' ||
    (req.headers.accept || '').includes('application/vnd.ipld.raw')
  if (!m || !raw) return send(406, Buffer.from('raw blocks only\n'), 'text/plain')
  let cid
  try { cid = CID.parse(m[1]) } catch { return send(400, Buffer.from('bad CID\n'), 'text/plain') }
  if (!(await store.has(cid))) return send(404, Buffer.from('not here\n'), 'text/plain')
  send(200, Buffer.from(await bytesOf(await store.get(cid))), 'application/vnd.ipld.raw')
})
server.listen(0, '127.0.0.1', 128, () => {
  writeFileSync(portFile + '.tmp', String(server.address().port))
  renameSync(portFile + '.tmp', portFile)
})

// Root CID of a file as ipfs-unixfs-importer computes it, with the settings
// cairn's fixed-size mode matches (docs/FORMATS.md): raw leaves, CIDv1,
// fixed-size chunks, balanced layout of 174 links a node, a one-chunk file
// reduced to its raw block.  usage: node importer.mjs CHUNK-SIZE FILE [CAR-OUT]
// With CAR-OUT, also writes the blocks as a CARv1 with @ipld/car.
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { CarWriter } from '@ipld/car/writer'
import { createReadStream, createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'

const [size, file, carOut] = process.argv.slice(2)
// every block the importer stores, with its real CID (getAll() would
// give raw-codec CIDs and streams)
const blocks = []
const store = new MemoryBlockstore()
const blockstore = {
  async put (cid, bytes, options) {
    blocks.push({ cid, bytes })
    return store.put(cid, bytes, options)
  },
  get: (cid, options) => store.get(cid, options),
  has: (cid, options) => store.has(cid, options)
}
const opts = {
  rawLeaves: true,
  cidVersion: 1,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: Number(size) }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  wrapWithDirectory: false
}
let root
for await (const entry of importer([{ content: createReadStream(file, { highWaterMark: 1 << 20 }) }], blockstore, opts)) {
  root = entry.cid
}
console.log(root.toString())
if (carOut) {
  const { writer, out } = CarWriter.create([root])
  const done = new Promise((resolve, reject) => {
    Readable.from(out).pipe(createWriteStream(carOut)).on('finish', resolve).on('error', reject)
  })
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await done
}

// Read a CAR cairn wrote with @ipld/car, and the file under its root with
// ipfs-unixfs-exporter; print the root CID and write the file's bytes to OUT.
// usage: node readcar.mjs CAR OUT
import { CarReader } from '@ipld/car/reader'
import { exporter } from 'ipfs-unixfs-exporter'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { readFile, writeFile } from 'node:fs/promises'

const [carFile, outFile] = process.argv.slice(2)
const reader = await CarReader.fromBytes(await readFile(carFile))
const roots = await reader.getRoots()
if (roots.length !== 1) throw new Error(`expected 1 root, got ${roots.length}`)
const blockstore = new MemoryBlockstore()
for await (const { cid, bytes } of reader.blocks()) {
  await blockstore.put(cid, bytes)
}
const entry = await exporter(roots[0], blockstore)
const parts = []
for await (const buf of entry.content()) parts.push(buf)
await writeFile(outFile, Buffer.concat(parts))
console.log(roots[0].toString())

// A Prometheus stand-in for the bench, in a process of its own as a real scraper is: GETs a URL once
// untimed, then `count` times, reading each reply to the end, and prints ONE JSON line with each
// timed GET's ms (request to last byte) and the bytes of the last.
//   node bench/scrape-client.ts http://127.0.0.1:PORT/metrics 5

import { get } from 'node:http';

function fetchBytes(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
      res.on('error', reject);
    }).on('error', reject);
  });
}

const [url = '', countText = '5'] = process.argv.slice(2);
const count = Number(countText);
if (!url.startsWith('http://127.0.0.1:') || !Number.isInteger(count) || count < 1 || count > 100) {
  throw new RangeError('usage: scrape-client.ts http://127.0.0.1:PORT/PATH COUNT (1..100)');
}
let bytes = await fetchBytes(url);
const ms: number[] = [];
for (let i = 0; i < count; i++) {
  const t = process.hrtime.bigint();
  bytes = await fetchBytes(url);
  ms.push(Number(process.hrtime.bigint() - t) / 1e6);
}
process.stdout.write(`${JSON.stringify({ ms, bytes })}\n`);

// `node mint.js N`: microseconds per livekit-server-sdk `toJwt` for a join token (the best
// of 5 runs of N), the Node SDK's minting cost that the Python minting is compared with.
import { AccessToken } from 'livekit-server-sdk';

const n = Number(process.argv[2] ?? 20000);
const secret = 's'.repeat(43);
async function once() {
  const at = new AccessToken('APIbench', secret, { identity: 'p', ttl: '10m' });
  at.addGrant({ roomJoin: true, room: 'bench', canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}
let best = Infinity;
for (let run = 0; run < 5; run++) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await once();
  const us = Number(process.hrtime.bigint() - start) / 1000 / n;
  best = Math.min(best, us);
}
console.log(JSON.stringify({ us_per_token: best }));

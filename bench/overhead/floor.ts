/**
 * The machine's floor for a heartbeat rate: a bare Node.js process that does nothing but what the
 * sidecar's heartbeats need at the transport level — one timer tick per interval sending one datagram per
 * path to an echo process, which answers each — with no signing, JSON or decisions. bench/overhead runs
 * it next to the sidecars so the report separates what the machine charges per datagram and wake-up
 * from what nimbus-ha adds.
 *
 *   node floor.js echo               prints the port, answers every datagram
 *   node floor.js ping PORT HB PATHS sends PATHS datagrams every HB ms, counts the answers
 */
import dgram from 'node:dgram';

const [mode, portArg, hbArg, pathsArg] = process.argv.slice(2);
const payload = Buffer.alloc(330, 'x'); // about the size of a signed heartbeat

if (mode === 'echo') {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(0, '127.0.0.1', () => process.stdout.write(`${s.address().port}\n`));
} else if (mode === 'ping') {
  const port = Number(portArg);
  const hb = Number(hbArg);
  const paths = Number(pathsArg);
  const socks = Array.from({ length: paths }, () => {
    const s = dgram.createSocket('udp4');
    s.connect(port, '127.0.0.1');
    s.on('message', () => undefined);
    return s;
  });
  setInterval(() => {
    for (const s of socks) s.send(payload);
  }, hb);
} else {
  console.error('usage: floor.js echo | floor.js ping PORT HEARTBEAT_MS PATHS');
  process.exit(2);
}

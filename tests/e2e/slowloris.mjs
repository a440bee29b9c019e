// slowloris.mjs HOST PORT SOURCE COUNT LINE_EVERY_MS MAX_MS - opens COUNT connections from the
// local address SOURCE, sends a request line, then one header line every LINE_EVERY_MS, never
// ending the head. Prints "opened N refused M" once all are attempted, "open N midway" a second
// later, and at the end "open N closed M after T ms": it ends when the server has closed every
// connection, or after MAX_MS. Used by test_slow_clients.sh.
import net from 'node:net';

const [host, port, source, count, every, max] = process.argv.slice(2);
const t0 = Date.now();
let open = 0, closed = 0, failed = 0, settled = 0, midway = false;
const socks = [];
const finish = () => {
	console.log(`open ${open} closed ${closed} after ${Date.now() - t0} ms`);
	for (const s of socks) s.destroy();
	process.exit(0);
};
const done = () => {
	if (++settled !== Number(count)) return;
	console.log(`opened ${open} refused ${failed}`);
	setTimeout(() => {
		console.log(`open ${open} midway`);
		midway = true;
	}, 1000);
};
for (let i = 0; i < Number(count); i++) {
	const s = net.connect({ host, port: Number(port), localAddress: source });
	let up = false;
	s.on('connect', () => {
		up = true;
		open++;
		s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
		done();
	});
	s.on('error', () => {});
	s.on('close', () => {
		if (up) {
			open--;
			closed++;
		} else {
			failed++;
			done();
		}
	});
	socks.push(s);
}
setInterval(() => {
	for (const s of socks) if (!s.destroyed) s.write('X-Slow: 1\r\n');
}, Number(every));
setInterval(() => {
	if (midway && open === 0) finish();
}, 250);
setTimeout(finish, Number(max));

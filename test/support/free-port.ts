import net from 'node:net';

/**
 * A TCP port on 127.0.0.1 that nothing listens on now, chosen by the OS. A fixed range can
 * collide with the ephemeral ports of outgoing connections on a busy machine.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

"""A TCP and UDP echo server on one selector: prints "TCP <port>" and
"UDP <port>", answers each TCP line with the line upper-cased and each UDP
datagram with its reverse, and exits 0 after a TCP client sends "QUIT",
printing how many connections and datagrams it served."""
import selectors
import socket

sel = selectors.DefaultSelector()
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(16)
lsock.setblocking(False)
usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
usock.bind(("127.0.0.1", 0))
usock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, "listen")
sel.register(usock, selectors.EVENT_READ, "udp")
print("TCP", lsock.getsockname()[1], flush=True)
print("UDP", usock.getsockname()[1], flush=True)

buffers = {}
conns = datagrams = 0
running = True
while running:
    for key, _ in sel.select(timeout=30):
        if key.data == "listen":
            c, addr = lsock.accept()
            assert addr[0] == "127.0.0.1", addr
            c.setblocking(False)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(c, selectors.EVENT_READ, "conn")
            buffers[c] = b""
            conns += 1
        elif key.data == "udp":
            data, addr = usock.recvfrom(65536)
            usock.sendto(data[::-1], addr)
            datagrams += 1
        else:
            c = key.fileobj
            data = c.recv(65536)
            if not data:
                sel.unregister(c)
                c.close()
                del buffers[c]
                continue
            buffers[c] += data
            while b"\n" in buffers[c]:
                line, buffers[c] = buffers[c].split(b"\n", 1)
                if line == b"QUIT":
                    running = False
                    c.sendall(b"BYE\n")
                else:
                    c.setblocking(True)
                    c.sendall(line.upper() + b"\n")
                    c.setblocking(False)
for c in list(buffers):
    c.close()
print("served", conns, "connections and", datagrams, "datagrams", flush=True)

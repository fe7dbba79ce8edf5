package app;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * com.sun.net.httpserver on 127.0.0.1: prints "PORT <n>", serves until GET
 * /quit, then prints "served <n> requests" and exits 0.
 *   GET /hello, POST /sha256 (the body's digest), GET /threads, GET /quit
 */
public class HttpApp {
    static final AtomicInteger served = new AtomicInteger();

    static void reply(HttpExchange ex, int code, String text) throws IOException {
        byte[] body = text.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(code, body.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(body);
        }
    }

    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        server.setExecutor(pool);
        CountDownLatch quit = new CountDownLatch(1);
        server.createContext("/hello", ex -> {
            served.incrementAndGet();
            reply(ex, 200, "hello from java\n");
        });
        server.createContext("/threads", ex -> {
            served.incrementAndGet();
            reply(ex, 200, Thread.currentThread().getName().startsWith("pool-") + " " + (Thread.activeCount() > 1) + "\n");
        });
        server.createContext("/sha256", ex -> {
            served.incrementAndGet();
            byte[] body = ex.getRequestBody().readAllBytes();
            try {
                String hex = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));
                reply(ex, 200, body.length + " " + hex + "\n");
            } catch (Exception e) {
                reply(ex, 500, e.toString());
            }
        });
        server.createContext("/quit", ex -> {
            served.incrementAndGet();
            reply(ex, 200, "bye\n");
            quit.countDown();
        });
        server.start();
        System.out.println("PORT " + server.getAddress().getPort());
        System.out.flush();
        quit.await();
        server.stop(0);
        pool.shutdown();
        System.out.println("served " + served.get() + " requests");
    }
}

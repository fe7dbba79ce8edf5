package app;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;

/**
 * Threads, JIT-compiled loops and the faults the JVM turns into exceptions:
 * run natively and in the enclave, both runs must print the same lines.
 */
public class Tour {
    static class Node {
        int value;
        Node next;
    }

    static int depth;

    static int recurse(int n) {
        depth = n;
        return recurse(n + 1) + 1;
    }

    static long primesIn(long lo, long hi) {
        long count = 0;
        for (long n = Math.max(lo, 2); n < hi; n++) {
            boolean prime = true;
            for (long d = 2; d * d <= n; d++) {
                if (n % d == 0) {
                    prime = false;
                    break;
                }
            }
            if (prime) count++;
        }
        return count;
    }

    static void section(String name) {
        System.out.println("== " + name);
    }

    public static void main(String[] args) throws Exception {
        section("executor on 8 threads");
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Callable<Long>> jobs = new ArrayList<>();
        ConcurrentHashMap<String, Integer> seen = new ConcurrentHashMap<>();
        for (int i = 0; i < 32; i++) {
            final long lo = i * 25_000L, hi = (i + 1) * 25_000L;
            jobs.add(() -> {
                seen.merge(Thread.currentThread().getName(), 1, Integer::sum);
                return primesIn(lo, hi);
            });
        }
        long total = 0;
        for (Future<Long> f : pool.invokeAll(jobs)) total += f.get();
        System.out.println("primes below 800000: " + total);
        System.out.println("pool threads used <= 8: " + (seen.size() >= 1 && seen.size() <= 8));
        CountDownLatch latch = new CountDownLatch(8);
        AtomicLong sum = new AtomicLong();
        for (int t = 0; t < 8; t++) {
            final int id = t;
            pool.submit(() -> {
                for (int k = 0; k < 100_000; k++) sum.addAndGet(id);
                latch.countDown();
            });
        }
        System.out.println("latch released: " + latch.await(60, TimeUnit.SECONDS) + " sum " + sum.get());
        CompletableFuture<String> cf = CompletableFuture.supplyAsync(() -> "async", pool).thenApplyAsync(s -> s + "+then", pool);
        System.out.println(cf.get(60, TimeUnit.SECONDS));
        pool.shutdown();
        System.out.println("terminated: " + pool.awaitTermination(60, TimeUnit.SECONDS));
        System.out.println("parallel stream: " + IntStream.rangeClosed(1, 2_000_000).parallel().asLongStream().sum());

        section("NullPointerException");
        Node node = new Node();
        node.next = null;
        for (int round = 0; round < 3; round++) {
            try {
                // A field read through null: the JVM relies on the SIGSEGV
                // this causes (implicit null check), in the interpreter and
                // in compiled code.
                int v = node.next.value;
                System.out.println("no exception: " + v);
            } catch (NullPointerException e) {
                System.out.println("caught NPE: " + e.getMessage());
            }
        }
        int caught = 0;
        for (int i = 0; i < 200_000; i++) {
            Node n = (i % 1000 == 999) ? null : node;
            try {
                caught += n.value;
            } catch (NullPointerException e) {
                caught++;
            }
        }
        System.out.println("NPEs in a hot loop: " + caught);

        section("StackOverflowError");
        for (int round = 0; round < 2; round++) {
            try {
                recurse(0);
            } catch (StackOverflowError e) {
                System.out.println("caught StackOverflowError, depth > 1000: " + (depth > 1000));
            }
        }

        section("ArithmeticException");
        int zero = args.length;
        try {
            System.out.println(10 / zero);
        } catch (ArithmeticException e) {
            System.out.println("caught: " + e.getMessage());
        }

        section("files and digests");
        Path tmp = Files.createTempDirectory("tour");
        Path f = tmp.resolve("data.txt");
        Files.writeString(f, "line\n".repeat(1000));
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        System.out.println(tmp.toString().startsWith("/tmp/tour") + " " + Files.size(f) + " " + HexFormat.of().formatHex(md.digest(Files.readAllBytes(f))));
        Files.delete(f);
        Files.delete(tmp);
        System.out.println(HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest("conf".getBytes(StandardCharsets.UTF_8))));
        Map<String, String> env = System.getenv();
        System.out.println("LANG " + env.get("LANG"));
        System.out.println("tour done");
    }
}

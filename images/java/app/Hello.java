import java.util.Map;
import java.util.TreeMap;

/** A small real app: some collections and string work, printed as one line. */
public class Hello {
    public static void main(String[] args) {
        Map<String, Integer> counts = new TreeMap<>();
        for (String w : "to be or not to be that is the question".split(" ")) {
            counts.merge(w, 1, Integer::sum);
        }
        System.out.println("Hello from Java " + Runtime.version().feature() + " in an enclave: " + counts
            + " args=" + String.join(",", args) + " greeting=" + System.getenv("GREETING"));
    }
}

//! Results: what a scenario measured, printed as a table and written as JSON.

use serde::Serialize;

/// Mean and spread of repeated samples of one quantity.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (0 with fewer than two samples).
    pub stddev: f64,
    /// The smallest sample: the least disturbed by other work on the machine.
    pub min: f64,
    pub median: f64,
    pub samples: Vec<f64>,
}

impl Stat {
    pub fn from_samples(samples: Vec<f64>) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let stddev = if samples.len() > 1 {
            (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let (min, median) = order_stats(&samples);
        Some(Stat {
            mean,
            stddev,
            min,
            median,
            samples,
        })
    }
}

/// Smallest and median of a non-empty sample.
fn order_stats(samples: &[f64]) -> (f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median)
}

/// One column of one metric.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Cell {
    Ok(Stat),
    /// Not measured on purpose: a tool is missing, or it does not apply.
    Skipped {
        reason: String,
    },
    /// The run failed; the message has the command and its stderr.
    Failed {
        error: String,
    },
}

impl Cell {
    pub fn skipped(reason: impl Into<String>) -> Cell {
        Cell::Skipped {
            reason: reason.into(),
        }
    }

    pub fn failed(error: impl Into<String>) -> Cell {
        Cell::Failed {
            error: error.into(),
        }
    }

    pub fn stat(&self) -> Option<&Stat> {
        match self {
            Cell::Ok(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// A target a metric should meet (shown, not enforced).
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub better: Better,
    pub value: f64,
    /// Where the target comes from, e.g. "2 cores".
    pub note: String,
}

impl Target {
    pub fn met(&self, v: f64) -> bool {
        match self.better {
            Better::Lower => v <= self.value,
            Better::Higher => v >= self.value,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    pub better: Better,
    /// One cell per column of the scenario, in order (a JSON object).
    #[serde(serialize_with = "as_map")]
    pub cells: Vec<(String, Cell)>,
    pub target: Option<Target>,
}

impl Metric {
    pub fn new(name: impl Into<String>, unit: impl Into<String>, better: Better) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            better,
            cells: Vec::new(),
            target: None,
        }
    }

    pub fn cell(&self, column: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, cell)| cell)
    }

    pub fn set(&mut self, column: &str, cell: Cell) {
        match self.cells.iter_mut().find(|(c, _)| c == column) {
            Some((_, old)) => *old = cell,
            None => self.cells.push((column.to_string(), cell)),
        }
    }

    /// `column`'s mean over native's mean.
    pub fn ratio(&self, column: &str) -> Option<f64> {
        let native = self.cell(NATIVE)?.stat()?.mean;
        let v = self.cell(column)?.stat()?.mean;
        (native > 0.0).then(|| v / native)
    }
}

pub const NATIVE: &str = "native";

fn as_map<S: serde::Serializer>(cells: &[(String, Cell)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(cells.iter().map(|(k, v)| (k, v)))
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub about: String,
    pub columns: Vec<String>,
    pub metrics: Vec<Metric>,
    /// Remarks printed under the table (skipped columns, how it was run).
    pub notes: Vec<String>,
    /// Set when the scenario could not run at all.
    pub error: Option<String>,
}

impl ScenarioReport {
    pub fn new(name: &str, about: &str, columns: &[&str]) -> ScenarioReport {
        ScenarioReport {
            name: name.to_string(),
            about: about.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            metrics: Vec::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    pub fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// Cells that failed, as "metric / column: error".
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.metrics {
            for (col, cell) in &m.cells {
                if let Cell::Failed { error } = cell {
                    out.push(format!("{} / {}: {}", m.name, col, error));
                }
            }
        }
        out
    }

    /// Ratios of every column to native, by metric, for the JSON output.
    pub fn ratios(&self) -> Vec<serde_json::Value> {
        self.metrics
            .iter()
            .map(|m| {
                let mut r = serde_json::Map::new();
                for c in &self.columns {
                    if c != NATIVE {
                        if let Some(x) = m.ratio(c) {
                            r.insert(c.clone(), x.into());
                        }
                    }
                }
                serde_json::json!({ "metric": m.name, "ratio_to_native": r })
            })
            .collect()
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let mut out = format!("== {}: {}\n", self.name, self.about);
        if let Some(e) = &self.error {
            out.push_str(&format!("   FAILED: {e}\n"));
            return out;
        }
        let has_target = self.metrics.iter().any(|m| m.target.is_some());
        let mut header = vec!["metric".to_string()];
        header.extend(self.columns.iter().cloned());
        if has_target {
            header.push("target".to_string());
        }
        let mut rows = vec![header];
        let mut footnotes: Vec<String> = Vec::new();
        for m in &self.metrics {
            let mut row = vec![format!("{} [{}]", m.name, m.unit)];
            for c in &self.columns {
                let text = match m.cell(c) {
                    None => "-".to_string(),
                    Some(Cell::Ok(s)) => {
                        let mut t = fmt_mean_sd(s.mean, s.stddev);
                        if c != NATIVE {
                            if let Some(r) = m.ratio(c) {
                                t.push_str(&format!(" ({}x)", fmt_ratio(r)));
                            }
                        }
                        t
                    }
                    Some(Cell::Skipped { reason }) => footnote(&mut footnotes, "skipped", reason),
                    Some(Cell::Failed { error }) => footnote(&mut footnotes, "FAILED", error),
                };
                row.push(text);
            }
            if has_target {
                row.push(match &m.target {
                    None => String::new(),
                    Some(t) => {
                        let sign = if t.better == Better::Lower {
                            "<="
                        } else {
                            ">="
                        };
                        let got = self
                            .columns
                            .iter()
                            .find_map(|c| m.cell(c).and_then(|x| x.stat()).map(|s| s.mean));
                        let verdict = match got {
                            Some(v) if t.met(v) => "met",
                            Some(_) => "MISSED",
                            None => "?",
                        };
                        format!("{sign} {} ({}): {verdict}", fmt_num(t.value), t.note)
                    }
                });
            }
            rows.push(row);
        }
        let ncols = rows[0].len();
        let widths: Vec<usize> = (0..ncols)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let mut line = String::from("   ");
            for (i, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < ncols {
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for (i, f) in footnotes.iter().enumerate() {
            out.push_str(&format!("   [{}] {}\n", i + 1, f));
        }
        for n in &self.notes {
            out.push_str(&format!("   note: {n}\n"));
        }
        out
    }
}

fn footnote(notes: &mut Vec<String>, kind: &str, text: &str) -> String {
    let full = format!("{kind}: {text}");
    let i = match notes.iter().position(|n| *n == full) {
        Some(i) => i,
        None => {
            notes.push(full);
            notes.len() - 1
        }
    };
    format!("{kind} [{}]", i + 1)
}

/// Decimals that show about four significant digits of `x`.
fn decimals(x: f64) -> usize {
    let a = x.abs();
    if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 10.0 {
        2
    } else {
        3
    }
}

/// About four significant digits, without exponent for everyday values.
pub fn fmt_num(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.001 {
        return format!("{x:.2e}");
    }
    format!("{x:.*}", decimals(x))
}

/// `mean ±sd`, both with the mean's decimals.
pub fn fmt_mean_sd(mean: f64, sd: f64) -> String {
    if mean != 0.0 && mean.abs() < 0.001 {
        return format!("{mean:.2e} ±{sd:.1e}");
    }
    let d = decimals(mean);
    format!("{mean:.d$} ±{sd:.d$}")
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_samples() {
        let s = Stat::from_samples(vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.mean, 2.0);
        assert_eq!((s.min, s.median), (1.0, 2.0));
        assert_eq!(
            Stat::from_samples(vec![4.0, 1.0, 3.0, 2.0]).unwrap().median,
            2.5
        );
        assert!((s.stddev - 1.0).abs() < 1e-12);
        assert!(Stat::from_samples(vec![]).is_none());
        assert_eq!(Stat::from_samples(vec![5.0]).unwrap().stddev, 0.0);
    }

    #[test]
    fn ratio_against_native() {
        let mut m = Metric::new("x", "ns", Better::Lower);
        m.set(NATIVE, Cell::Ok(Stat::from_samples(vec![100.0]).unwrap()));
        m.set("conf", Cell::Ok(Stat::from_samples(vec![250.0]).unwrap()));
        m.set("gvisor", Cell::skipped("runsc not found"));
        assert_eq!(m.ratio("conf"), Some(2.5));
        assert_eq!(m.ratio("gvisor"), None);
    }

    #[test]
    fn table_shows_ratio_and_footnotes() {
        let mut r = ScenarioReport::new("t", "test", &[NATIVE, "conf", "gvisor"]);
        let mut m = Metric::new("op", "ns/call", Better::Lower);
        m.set(
            NATIVE,
            Cell::Ok(Stat::from_samples(vec![80.0, 80.0]).unwrap()),
        );
        m.set(
            "conf",
            Cell::Ok(Stat::from_samples(vec![64.0, 64.0]).unwrap()),
        );
        m.set("gvisor", Cell::skipped("runsc not found"));
        r.metrics.push(m);
        let t = r.render();
        assert!(t.contains("64.00 ±0.00 (0.80x)"), "{t}");
        assert!(t.contains("skipped [1]"), "{t}");
        assert!(t.contains("[1] skipped: runsc not found"), "{t}");
    }
}

//! "Did you mean": the known name nearest to a misspelt one.

/// `, did you mean "x"?` for the candidate nearest to `word` (an edit distance of at most a
/// third of its length, and at least 1), else an empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates).map_or_else(String::new, |c| format!(", did you mean {c:?}?"))
}

/// The candidate nearest to `word`, if near enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_word_and_a_stranger_finds_none() {
        assert_eq!(nearest("comand", ["command", "timeout", "env"]), Some("command"));
        assert_eq!(
            nearest("includePackTest", ["includePackTests", "args"]),
            Some("includePackTests")
        );
        assert_eq!(nearest("zzz", ["command", "timeout"]), None);
        assert_eq!(did_you_mean("smoek", ["smoke"]), ", did you mean \"smoke\"?");
    }
}

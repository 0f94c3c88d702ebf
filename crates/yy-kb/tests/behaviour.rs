//! Edits, filters, determinism across edit histories, and odd input.

use yy_kb::{Answer, DEFAULT_THRESHOLD, Entry, Format, KbError, KnowledgeBase, SearchOptions, import_json};

const ENTRIES: &str = include_str!("../../../tests/fixtures/kb/entries.json");
const HELDOUT: &str = include_str!("../../../tests/fixtures/kb/heldout.jsonl");

fn entries() -> Vec<Entry> {
    import_json(ENTRIES).unwrap()
}

fn questions() -> Vec<String> {
    HELDOUT
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["question"].as_str().map(str::to_owned))
        .collect()
}

/// Everything a search and an answer return, scores compared bit for bit.
fn results(kb: &KnowledgeBase) -> Vec<String> {
    let mut out = Vec::new();
    for q in questions() {
        for h in kb.search(&q, &SearchOptions::default()).unwrap() {
            out.push(format!("{q}|{}|{:08x}|{:?}", h.id, h.score.to_bits(), h.highlights));
        }
        out.push(format!("{q}|{:?}", kb.answer(&q, DEFAULT_THRESHOLD).unwrap()));
    }
    out
}

#[test]
fn rebuilt_in_any_order_answers_identically() {
    let all = entries();
    let straight = KnowledgeBase::from_entries(all.clone()).unwrap();

    // Another history to the same set: reversed order, committed along the way (so several
    // segments with deletions), edits later undone, entries removed and re-added, entries
    // disabled and enabled again, and entries that come and go.
    let mut kb = KnowledgeBase::new();
    for (i, e) in all.iter().rev().enumerate() {
        let mut edited = e.clone();
        edited.answer = format!("draft {i}: shipping refund 退款 发货");
        edited.questions.push("temporary question about orders 订单".into());
        kb.upsert(edited).unwrap();
        if i % 37 == 0 {
            kb.commit().unwrap();
            let _ = kb.search("refund", &SearchOptions::default()).unwrap();
        }
    }
    for i in 0..50 {
        kb.upsert(Entry {
            id: format!("tmp-{i}"),
            title: format!("临时条目 {i} refund order"),
            questions: vec!["怎么退款".into()],
            answer: "temporary".into(),
            format: Format::Text,
            tags: vec![],
            locale: "en".into(),
            enabled: true,
        })
        .unwrap();
    }
    kb.commit().unwrap();
    for (i, e) in all.iter().enumerate() {
        if i % 3 == 0 {
            kb.remove(&e.id).unwrap();
            kb.commit().unwrap();
        }
        kb.upsert(e.clone()).unwrap();
        if i % 5 == 0 {
            kb.set_enabled(&e.id, false).unwrap();
            kb.commit().unwrap();
            kb.set_enabled(&e.id, true).unwrap();
        }
    }
    for i in 0..50 {
        assert!(kb.remove(&format!("tmp-{i}")).unwrap());
    }
    assert_eq!(kb.len(), straight.len());
    assert_eq!(results(&kb), results(&straight));
}

fn entry(id: &str, title: &str, locale: &str, tags: &[&str]) -> Entry {
    Entry {
        id: id.into(),
        title: title.into(),
        questions: vec![],
        answer: format!("answer to {title}"),
        format: Format::Text,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        locale: locale.into(),
        enabled: true,
    }
}

fn ids(kb: &KnowledgeBase, q: &str, options: &SearchOptions) -> Vec<String> {
    kb.search(q, options).unwrap().into_iter().map(|h| h.id).collect()
}

#[test]
fn edits_filters_and_ties() {
    let mut kb = KnowledgeBase::new();
    assert!(ids(&kb, "refund", &SearchOptions::default()).is_empty());
    kb.upsert(entry("b", "refund policy", "en", &["returns"])).unwrap();
    kb.upsert(entry("a", "refund policy", "en-GB", &["money"])).unwrap();
    kb.upsert(entry("c", "退款政策 refund", "zh-CN", &["returns"])).unwrap();
    // Equal scores come in id order.
    assert_eq!(ids(&kb, "refund policy", &SearchOptions::default())[..2], ["a", "b"]);
    let only = |locale: Option<&str>, tags: &[&str]| SearchOptions {
        locale: locale.map(str::to_owned),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..SearchOptions::default()
    };
    assert_eq!(ids(&kb, "refund", &only(Some("en"), &[])), ["a", "b"]);
    assert_eq!(ids(&kb, "refund", &only(Some("en-gb"), &[])), ["a"]);
    assert_eq!(ids(&kb, "refund", &only(Some("zh_CN"), &[])), ["c"]);
    assert_eq!(ids(&kb, "refund", &only(None, &["returns"])).len(), 2);
    assert_eq!(ids(&kb, "refund", &only(Some("en"), &["returns", "nothing"])), ["b"]);
    assert!(ids(&kb, "refund", &only(Some("fr"), &[])).is_empty());
    assert_eq!(
        ids(
            &kb,
            "refund",
            &SearchOptions {
                limit: 1,
                ..SearchOptions::default()
            }
        )
        .len(),
        1
    );

    assert!(kb.set_enabled("a", false).unwrap());
    assert_eq!(ids(&kb, "refund policy", &SearchOptions::default())[0], "b");
    assert_eq!((kb.len(), kb.enabled_len()), (3, 2));
    assert!(kb.set_enabled("a", true).unwrap());
    assert!(!kb.set_enabled("missing", true).unwrap());
    assert!(kb.remove("a").unwrap());
    assert!(!kb.remove("a").unwrap());
    assert!(kb.upsert(entry("b", "shipping fees", "en", &[])).unwrap());
    assert_eq!(ids(&kb, "refund policy", &SearchOptions::default()), ["c"]);
    assert_eq!(ids(&kb, "shipping", &SearchOptions::default()), ["b"]);

    let err = kb.upsert(entry("bad id", "t", "en", &[])).unwrap_err();
    assert!(matches!(err, KbError::Invalid(ref e) if e.field == "id"), "{err}");
}

#[test]
fn highlights_mark_matches_and_escape() {
    let mut kb = KnowledgeBase::new();
    let mut e = entry("x", "Refund <policy>", "en", &[]);
    e.questions = vec!["How do refunds work?".into(), "unrelated".into()];
    e.answer = format!("{} refunds are paid back {}", "intro ".repeat(60), "tail ".repeat(60));
    kb.upsert(e).unwrap();
    let hit = &kb.search("refund", &SearchOptions::default()).unwrap()[0];
    let fields: Vec<&str> = hit.highlights.iter().map(|h| h.field.as_str()).collect();
    assert_eq!(fields, ["title", "questions[0]", "answer"]);
    assert_eq!(hit.highlights[0].snippet, "<em>Refund</em> &lt;policy&gt;");
    assert!(hit.highlights[2].snippet.contains("<em>refunds</em>"));
    assert!(hit.highlights[2].snippet.starts_with('…') && hit.highlights[2].snippet.chars().count() < 200);
}

#[test]
fn unknown_questions_fall_back() {
    let kb = KnowledgeBase::from_entries(entries()).unwrap();
    for q in ["", "   ", "？？？", "😀😀", "the of and", "量子力学的基本原理是什么"] {
        match kb.answer(q, DEFAULT_THRESHOLD).unwrap() {
            Answer::Fallback { best_confidence } => assert!((0.0..DEFAULT_THRESHOLD).contains(&best_confidence)),
            other => panic!("{q:?}: {other:?}"),
        }
    }
}

#[test]
fn odd_input_never_panics() {
    let kb = KnowledgeBase::from_entries(entries()).unwrap();
    let mut inputs: Vec<String> = [
        "\u{0}\u{1}\u{7f}\u{85}\u{2028}",
        "😀😃🤬👍🏽❤️‍🔥🏳️‍🌈 退款",
        "\u{202e}订单\u{200b}A-1024\u{feff}",
        "ＡＢＣ１２３退款",
        "'\"\\/<>{}[]()*&^%$#@!~`",
        "e\u{301}\u{302}\u{303}",
        "𠀀𠀁𪚲𰻞",
        "AND OR NOT title:refund \"phrase",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    inputs.push("我要退款 refund ".repeat(20_000));
    inputs.push("x".repeat(200_000));
    inputs.push("退".repeat(200_000));
    for q in &inputs {
        let hits = kb
            .search(
                q,
                &SearchOptions {
                    limit: 1_000,
                    ..SearchOptions::default()
                },
            )
            .unwrap();
        assert!(hits.len() <= yy_kb::MAX_LIMIT);
        match kb.answer(q, DEFAULT_THRESHOLD).unwrap() {
            Answer::Found { confidence, .. } => assert!((0.0..=1.0).contains(&confidence)),
            Answer::Fallback { best_confidence } => assert!((0.0..=1.0).contains(&best_confidence)),
        }
        let _ = kb.answer(q, f32::NAN).unwrap();
    }
}

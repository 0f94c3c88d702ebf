//! Asks the fixture knowledge base questions and prints the top hits and the answer:
//! `cargo run -p yy-kb --example kb_query -- "怎么退货" "where is my parcel"`.
//! With `--loo ID`, the entry's last question is taken out and asked instead.

fn main() {
    let entries = yy_kb::import_json(include_str!("../../../tests/fixtures/kb/entries.json")).unwrap();
    let mut kb = yy_kb::KnowledgeBase::from_entries(entries.clone()).unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--loo") {
        let id = &args[1];
        let e = entries.iter().find(|e| &e.id == id).unwrap();
        let mut w = e.clone();
        let q = w.questions.pop().unwrap();
        kb.upsert(w).unwrap();
        println!("{q}");
        for h in kb.search(&q, &Default::default()).unwrap().iter().take(5) {
            println!("{:.3} {} {}", h.score, h.id, h.title);
        }
        println!("{:?}", kb.answer(&q, 0.0).unwrap());
        return;
    }
    for q in &args {
        for h in kb.search(q, &Default::default()).unwrap().iter().take(5) {
            println!(
                "{:.3} {} {} {:?}",
                h.score,
                h.id,
                h.title,
                h.highlights.iter().map(|h| &h.snippet).collect::<Vec<_>>()
            );
        }
        println!("{:?}", kb.answer(q, yy_kb::DEFAULT_THRESHOLD).unwrap());
    }
}

//! From a customer's message to a routing decision: language understanding (`yy-nlu`) produces
//! the facts, the tenant's rules (`yy-rules`) decide. Pure and synchronous, so the same call serves
//! the live path, replays and the benchmark.

use std::collections::BTreeMap;

use yy_nlu::{Analysis, Analyzer};
use yy_rules::{Decision, Facts, IntentScore, RuleSet};

/// The intent the default set gives to "let me talk to a human" (转人工, human please).
pub const HANDOFF_INTENT: &str = "human_handoff";

/// What routing knows about a message besides its text.
#[derive(Debug, Clone, Default)]
pub struct MessageContext {
    /// The channel the conversation is on.
    pub channel: String,
    /// The contact's attributes (such as a VIP tier from the CRM).
    pub contact_attributes: BTreeMap<String, String>,
    /// Now, in seconds since the epoch (UTC).
    pub now: i64,
    /// How long the conversation has been waiting for an agent, if it waits.
    pub waiting_seconds: Option<u64>,
    /// How many of the customer's messages just before this one could not be classified.
    pub previous_low_confidence: u32,
}

/// The facts the rules see for a message that `analysis` describes.
pub fn facts(analysis: &Analysis, text: &str, context: &MessageContext) -> Facts {
    let intents = &analysis.intents;
    Facts {
        intents: intents
            .top
            .iter()
            .map(|(name, confidence)| IntentScore {
                name: name.clone(),
                confidence: *confidence,
            })
            .collect(),
        fallback: intents.fallback,
        ambiguous: intents.ambiguous,
        sentiment: Some(analysis.sentiment.score),
        sentiment_label: Some(match analysis.sentiment.label {
            yy_nlu::SentimentLabel::Negative => yy_rules::SentimentLabel::Negative,
            yy_nlu::SentimentLabel::Neutral => yy_rules::SentimentLabel::Neutral,
            yy_nlu::SentimentLabel::Positive => yy_rules::SentimentLabel::Positive,
        }),
        language: match analysis.language {
            yy_nlu::Language::Zh => Some(yy_rules::Language::Zh),
            yy_nlu::Language::En => Some(yy_rules::Language::En),
            yy_nlu::Language::Mixed => Some(yy_rules::Language::Mixed),
            yy_nlu::Language::Unknown => None,
        },
        channel: context.channel.clone(),
        contact_attributes: context.contact_attributes.clone(),
        text: text.to_owned(),
        now: context.now,
        waiting_seconds: context.waiting_seconds,
        handoff_requested: !intents.fallback && intents.intent() == Some(HANDOFF_INTENT),
        consecutive_low_confidence: if intents.fallback {
            context.previous_low_confidence + 1
        } else {
            0
        },
    }
}

/// Understands `text` and decides where the conversation goes.
pub fn route(analyzer: &Analyzer, rules: &RuleSet, text: &str, context: &MessageContext) -> (Analysis, Decision) {
    let analysis = analyzer.analyze(text);
    let decision = rules.decide(&facts(&analysis, text, context));
    (analysis, decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yy_rules::Route;

    fn example_rules() -> RuleSet {
        RuleSet::parse(include_str!("../../../crates/yy-rules/examples/rules.json")).expect("the example rules parse")
    }

    fn context(tier: Option<&str>) -> MessageContext {
        MessageContext {
            channel: "web".into(),
            contact_attributes: tier
                .map(|t| BTreeMap::from([("tier".to_owned(), t.to_owned())]))
                .unwrap_or_default(),
            // A Wednesday, 03:00 UTC: 11:00 in China, inside business hours.
            now: 1_764_126_000,
            ..MessageContext::default()
        }
    }

    #[test]
    fn an_angry_vip_goes_to_the_vip_queue_and_a_question_to_the_bot() {
        let analyzer = Analyzer::default_bilingual();
        let rules = example_rules();
        let (analysis, decision) = route(
            &analyzer,
            &rules,
            "你们的服务太差了！气死我了，订单到现在还没发货！",
            &context(Some("vip")),
        );
        assert!(analysis.sentiment.score <= -0.6, "{analysis:?}");
        match &decision.action.route {
            Route::Queue(target) => assert_eq!(target.queue, "vip", "{decision:?}"),
            other => panic!("expected the vip queue, got {other:?}"),
        }
        let (_, decision) = route(&analyzer, &rules, "where is my order?", &context(None));
        assert!(matches!(decision.action.route, Route::Bot), "{decision:?}");
    }

    #[test]
    fn asking_for_a_human_is_a_handoff() {
        let analyzer = Analyzer::default_bilingual();
        let analysis = analyzer.analyze("转人工");
        let facts = facts(&analysis, "转人工", &context(None));
        assert!(facts.handoff_requested, "{analysis:?}");
        let decision = example_rules().decide(&facts);
        assert!(matches!(decision.action.route, Route::Queue(_)), "{decision:?}");
    }

    #[test]
    fn low_confidence_counts_up_and_resets() {
        let analyzer = Analyzer::default_bilingual();
        let unclear = analyzer.analyze("qwzx plorb");
        let mut ctx = context(None);
        ctx.previous_low_confidence = 1;
        assert_eq!(facts(&unclear, "qwzx plorb", &ctx).consecutive_low_confidence, 2);
        let clear = analyzer.analyze("I want a refund for my order");
        assert_eq!(
            facts(&clear, "I want a refund for my order", &ctx).consecutive_low_confidence,
            0
        );
    }
}

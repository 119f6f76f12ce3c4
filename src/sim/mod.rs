//! The embedded simulated market: providers on loopback speaking the OpenAI, Anthropic and
//! Gemini dialects.
//!
//! Every list price follows a common market factor (mean-reverting jump-diffusion on the log
//! price, hourly steps, as in the seed paper: demand and supply shocks that move everyone)
//! times the provider's own deviation, around its persistent level; each provider also has its
//! own latency profile, answer quality per tier,
//! tokenizer inflation (reported usage vs the reference tokenizer), hidden reasoning tokens and
//! fault rate. Everything is seeded: the same market seed gives the same prices and, for the
//! same requests, the same answers and faults. Floats appear here only to *generate* the
//! market; prices are quantised to exact decimals before the oracle sees them.

pub mod server;
pub mod solve;
pub mod timer;

use crate::config::{Dialect, Endpoint};
use sit_core::fixed::{Pusd, Rate};
use sit_core::price::{PriceEntry, PriceSchedule};
use sit_core::rng::Rng;
use sit_core::time::{Date, HOUR_MS};

/// The first hour of every price path (paths are simulated from here, so a given date always
/// gets the same prices whatever day a run starts on).
pub const EPOCH: &str = "2026-01-01";

/// A mean-reverting jump-diffusion on a log price, hourly from 0:
/// `x += -kappa x + sigma N(0,1)`, plus with probability `jump_rate` a jump `N(jump_mu, jump_sd)`.
pub fn mrjd(
    r: &mut Rng,
    hours: usize,
    kappa: f64,
    sigma: f64,
    jump_rate: f64,
    jump_mu: f64,
    jump_sd: f64,
) -> Vec<f64> {
    let mut x = 0.0f64;
    let mut out = Vec::with_capacity(hours);
    for _ in 0..hours {
        out.push(x);
        x += -kappa * x + sigma * r.normal();
        if r.unit_f64() < jump_rate {
            x += jump_mu + jump_sd * r.normal();
        }
    }
    out
}

/// One simulated provider's behaviour.
#[derive(Debug, Clone)]
pub struct SimProvider {
    pub id: String,
    /// List prices at the mean of the price path, USD per 1M tokens.
    pub base_input: f64,
    pub base_output: f64,
    /// Probability (per mille) of answering a t1, t2, t3 probe correctly.
    pub quality_permille: [u32; 3],
    /// Median time to first answer token, ms, before prompt-length cost.
    pub ttft_ms: u64,
    /// Streaming speed, answer tokens per second.
    pub tokens_per_sec: u32,
    /// Reported usage / reference tokens, per mille (1000 = same tokenizer).
    pub inflation_permille: u32,
    /// Hidden reasoning tokens billed per t1 probe (x2 for t2, x4 for t3).
    pub reasoning_tokens: u32,
    /// Probability (per mille) of a fault (429, 500, truncated or malformed stream).
    pub fault_permille: u32,
    pub seed: u64,
    /// The API dialect its endpoint speaks (every simulated server answers all three).
    pub dialect: Dialect,
    /// Spread of the first-token delay around `ttft_ms` (lognormal sigma x 1000; 0: exact,
    /// for the TTFT-accuracy benchmark).
    pub ttft_jitter_permille: u32,
    /// A fault every streamed answer gets (for fixture tests of failure classes that the
    /// fault-injecting mock cannot produce); `None` in the demo market.
    pub scripted: Option<ScriptedFault>,
}

/// A fault the simulator injects into every streamed answer of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedFault {
    /// After the first answer piece, the dialect's in-stream error object (HTTP status stays
    /// 200, as real providers do when a generation fails midway).
    ErrorEvent,
    /// One answer piece carries bytes that are not UTF-8; the stream otherwise completes.
    InvalidUtf8,
}

/// A seeded market of providers.
#[derive(Debug, Clone)]
pub struct Market {
    pub seed: u64,
    pub providers: Vec<SimProvider>,
}

#[allow(clippy::too_many_arguments)]
fn p(
    id: &str,
    i: f64,
    o: f64,
    q: [u32; 3],
    ttft: u64,
    tps: u32,
    infl: u32,
    reas: u32,
    fault: u32,
) -> SimProvider {
    SimProvider {
        id: id.into(),
        base_input: i,
        base_output: o,
        quality_permille: q,
        ttft_ms: ttft,
        tokens_per_sec: tps,
        inflation_permille: infl,
        reasoning_tokens: reas,
        fault_permille: fault,
        seed: 0,
        dialect: Dialect::Openai,
        ttft_jitter_permille: 350,
        scripted: None,
    }
}

impl Market {
    /// The demo market: 12 providers, priced like today's list prices (STCI tape, 2026-02-14)
    /// and differing in every way the SIT unit is meant to see.
    pub fn default_market(seed: u64) -> Market {
        let mut providers = vec![
            p(
                "sim-atlas",
                0.15,
                0.60,
                [980, 930, 800],
                120,
                120,
                1000,
                0,
                10,
            ),
            p(
                "sim-boreal",
                0.10,
                0.40,
                [970, 900, 720],
                200,
                80,
                1100,
                0,
                20,
            ),
            p(
                "sim-cobalt",
                0.40,
                1.60,
                [990, 960, 900],
                150,
                100,
                1000,
                40,
                10,
            ),
            p(
                "sim-delta",
                0.05,
                0.20,
                [950, 860, 620],
                250,
                150,
                1250,
                0,
                30,
            ),
            p(
                "sim-ember",
                0.25,
                2.00,
                [990, 970, 920],
                300,
                60,
                1000,
                120,
                10,
            ),
            p(
                "sim-fjord",
                0.08,
                0.30,
                [960, 880, 650],
                100,
                200,
                1050,
                0,
                15,
            ),
            p(
                "sim-garnet",
                0.20,
                0.80,
                [600, 500, 300],
                150,
                100,
                1000,
                0,
                10,
            ), // low quality
            p(
                "sim-helix",
                0.12,
                0.48,
                [970, 910, 750],
                150,
                100,
                1000,
                0,
                150,
            ), // unreliable
            p(
                "sim-iris",
                0.30,
                1.20,
                [985, 950, 850],
                1100,
                90,
                1000,
                0,
                10,
            ), // slow first token
            p(
                "sim-jade",
                0.06,
                0.24,
                [965, 890, 680],
                180,
                90,
                1150,
                0,
                15,
            ),
            p(
                "sim-kestrel",
                0.50,
                2.50,
                [995, 980, 940],
                140,
                110,
                1000,
                60,
                5,
            ),
            p(
                "sim-lumen",
                0.18,
                0.72,
                [975, 920, 780],
                220,
                70,
                1000,
                0,
                15,
            ),
        ];
        // A mixed market: two providers speak Anthropic Messages, two Gemini.
        for (id, d) in [
            ("sim-cobalt", Dialect::Anthropic),
            ("sim-kestrel", Dialect::Anthropic),
            ("sim-ember", Dialect::Gemini),
            ("sim-lumen", Dialect::Gemini),
            ("sim-jade", Dialect::OpenaiResponses),
        ] {
            if let Some(pr) = providers.iter_mut().find(|p| p.id == id) {
                pr.dialect = d;
            }
        }
        for (i, pr) in providers.iter_mut().enumerate() {
            pr.seed = Rng::from_bytes(&[
                &seed.to_le_bytes(),
                pr.id.as_bytes(),
                &(i as u64).to_le_bytes(),
            ])
            .next_u64();
        }
        Market { seed, providers }
    }

    /// A market of one provider (for tests and certification runs).
    pub fn single(provider: SimProvider) -> Market {
        Market {
            seed: provider.seed,
            providers: vec![provider],
        }
    }

    /// The market's common log-price factor, hourly from [`EPOCH`]: demand and supply shocks
    /// that move every provider (the paper's mean-reverting jump-diffusion, slow reversion,
    /// about one shock a week). Exposed so an index can be scored against the true price.
    pub fn factor_path(&self, hours: usize) -> Vec<f64> {
        let mut r = Rng::new(self.seed ^ 0x4641_4354_4f52);
        mrjd(&mut r, hours, 0.004, 0.010, 0.006, -0.06, 0.10)
    }

    /// Hourly price multipliers of provider `i` from [`EPOCH`] for `hours` hours: the common
    /// factor times the provider's own deviation (a faster-reverting path with rare price
    /// cuts), so providers move together and differ by their persistent levels.
    pub fn price_path(&self, i: usize, hours: usize) -> Vec<f64> {
        let pr = &self.providers[i];
        let mut r = Rng::new(pr.seed ^ 0x5052_4943_4553);
        let idio = mrjd(&mut r, hours, 0.02, 0.004, 0.001, -0.12, 0.05);
        self.factor_path(hours)
            .iter()
            .zip(idio)
            .map(|(c, x)| (c + x).exp())
            .collect()
    }

    /// The price schedule of provider `i`: one entry per hour from [`EPOCH`] up to the end of
    /// `until` (inclusive), quantised to whole micro-dollars per 1M tokens.
    pub fn schedule(&self, i: usize, until: Date) -> PriceSchedule {
        let epoch = Date::parse(EPOCH).expect("epoch");
        let hours = ((until.0 - epoch.0 + 1).max(1) as usize) * 24;
        let pr = &self.providers[i];
        let q = |usd: f64| Rate((usd * 1e6).round() as i128);
        let entries = self
            .price_path(i, hours)
            .into_iter()
            .enumerate()
            .map(|(h, m)| PriceEntry {
                effective_from_ms: epoch.start_ms() + h as i64 * HOUR_MS,
                input: q(pr.base_input * m),
                output: q(pr.base_output * m),
                cached_input: q(pr.base_input * m * 0.5),
                request_fee: Pusd::ZERO,
            })
            .collect();
        PriceSchedule(entries)
    }

    /// Endpoints for the providers served at `base_urls` (same order), priced until `until`.
    pub fn endpoints(&self, base_urls: &[String], until: Date) -> Vec<Endpoint> {
        self.providers
            .iter()
            .enumerate()
            .map(|(i, pr)| Endpoint {
                id: pr.id.clone(),
                provider: pr.id.clone(),
                model: format!("{}-chat", pr.id),
                dialect: pr.dialect,
                // OpenAI-style bases end in /v1; the other adapters add their own paths.
                base_url: match pr.dialect {
                    Dialect::Openai | Dialect::OpenaiResponses => base_urls[i].clone(),
                    _ => base_urls[i].trim_end_matches("/v1").to_string(),
                },
                region: "loopback".into(),
                api_key_env: None,
                concurrency: 64,
                requests_per_minute: None,
                weights: None,
                reasoning_in_output: Endpoint::default_reasoning_in_output(pr.dialect, &pr.id),
                prices: self.schedule(i, until),
                price_sources: Default::default(),
            })
            .collect()
    }
}

/// Render endpoints as providers.toml text (what `sit sim` prints), with the prices of the
/// current hour only.
pub fn providers_toml(endpoints: &[Endpoint], at_ms: i64) -> String {
    let mut s = String::from("# Simulated market on loopback, written by `sit sim`.\n");
    for e in endpoints {
        s.push_str(&format!(
            "\n[[endpoints]]\nid = \"{}\"\nprovider = \"{}\"\nmodel = \"{}\"\ndialect = \"{}\"\nbase_url = \"{}\"\nregion = \"{}\"\n",
            e.id, e.provider, e.model, e.dialect, e.base_url, e.region
        ));
        if let Some(p) = e.prices.in_force(at_ms) {
            s.push_str(&format!(
                "\n[[endpoints.prices]]\neffective_from = \"{}\"\ninput = \"{}\"\noutput = \"{}\"\ncached_input = \"{}\"\n",
                sit_core::time::format_utc_ms(p.effective_from_ms).replace(".000Z", "Z"),
                p.input,
                p.output,
                p.cached_input
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_is_reproducible_and_prices_move_and_revert() {
        let a = Market::default_market(7);
        let b = Market::default_market(7);
        let until = Date::parse("2026-01-10").unwrap();
        assert_eq!(a.schedule(0, until), b.schedule(0, until));
        assert_ne!(
            a.schedule(0, until),
            Market::default_market(8).schedule(0, until)
        );
        let path = a.price_path(0, 24 * 60);
        assert!(path.windows(2).any(|w| w[0] != w[1]), "prices never move");
        let mean = path.iter().sum::<f64>() / path.len() as f64;
        assert!(
            mean > 0.6 && mean < 1.6,
            "path drifts away: mean multiplier {mean}"
        );
        assert!(a.providers.len() >= 10);
    }
}

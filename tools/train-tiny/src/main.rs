//! `train-tiny`: train a tiny BitNet b1.58 model on the shipped Austen corpus with
//! quantization-aware training, export it in the exact Hugging Face checkpoint format, and score
//! it with the engine.
//!
//! Steps: (1) a Llama-3-style BPE tokenizer (3840 regular tokens + the 256 Llama-3 specials at
//! 3840..4096) trained on `train.txt` with the engine's `train_llama3_style`; (2) the real
//! BitNet block structure in candle ([`model`]) with f32 masters and fake-quantized weights and
//! activations (straight-through estimator); (3) AdamW, warmup + cosine decay over a time budget
//! (`--minutes`) or a step count (`--steps`); (4) export with the engine's own
//! `ternarize_and_pack` ([`export`]); (5) perplexity of the exported files through the engine
//! (`rotor::model::Model::load` + `rotor::perplexity`), and baselines (uniform, untrained
//! initialisation exported the same way, unigram).
//!
//! Outputs in `--out`: the checkpoint files, `training.csv` (the loss curve) and
//! `training.json` (final numbers, hyperparameters, environment).

mod data;
mod export;
mod model;
mod ops;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use serde_json::json;

use rotor::sample::Rng;

#[derive(Parser, Debug, Clone, serde::Serialize)]
#[command(about = "Train a tiny BitNet b1.58 (QAT) on the Austen corpus and export it")]
struct Args {
    /// Directory with train.txt, validation.txt, test.txt.
    #[arg(long, default_value = "datasets/corpus")]
    corpus: PathBuf,
    /// Output model directory.
    #[arg(long, default_value = "datasets/models/austen-tiny")]
    out: PathBuf,
    /// Where the untrained initialisation is exported (the baseline; not committed).
    #[arg(long, default_value = "target/train-tiny/init")]
    init_out: PathBuf,
    /// Training time budget in minutes (tokenizer, final evaluation and export not included).
    #[arg(long, default_value_t = 25.0)]
    minutes: f64,
    /// Train for exactly this many steps instead (the schedule then follows steps, not time).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 6)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    #[arg(long, default_value_t = 704)]
    inter: usize,
    /// Regular BPE tokens; the 256 specials follow (vocab = n_bpe + 256).
    #[arg(long, default_value_t = 3840)]
    n_bpe: usize,
    /// Training context (tokens per window).
    #[arg(long, default_value_t = 256)]
    ctx: usize,
    /// `max_position_embeddings` of the exported config.
    #[arg(long, default_value_t = 1024)]
    max_pos: usize,
    /// Windows per step (8 × 256 = 2048 tokens: on one core, throughput is the same as with 16,
    /// and a 25-minute budget gets twice the optimizer steps).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Final learning rate as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    min_lr_frac: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 40)]
    warmup: usize,
    /// AdamW weight decay of the projection masters (embeddings and norms: none).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Evaluate (and write a CSV row) every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: usize,
    /// Fixed validation windows per evaluation.
    #[arg(long, default_value_t = 32)]
    eval_windows: usize,
    #[arg(long, default_value_t = 20250601)]
    seed: u64,
    /// Worker threads. Default 1: candle's CPU pool synchronises with spinning barriers, and
    /// on 2 cores shared with other work 2 threads measured slower than 1 (485–604 vs
    /// 745–771 tok/s).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Chunks of the test split the candle-side (f32-scale) QAT model is scored on, to compare
    /// with the engine on the same chunks (the full split is scored by the engine only).
    #[arg(long, default_value_t = 64)]
    compare_chunks: usize,
    /// Skip the engine perplexity of the untrained initialisation.
    #[arg(long)]
    no_init_baseline: bool,
    /// Profile: time forward / backward / optimizer over this many steps, print, and exit.
    #[arg(long)]
    bench_steps: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let threads = args.threads.max(1);
    // SAFETY: no other thread exists yet; candle's CPU backend reads RAYON_NUM_THREADS.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    keep_heap();
    let t_start = Instant::now();
    let s = &args;
    if s.inter % 4 != 0 || s.hidden % 4 != 0 || s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0
    {
        bail!("shapes must satisfy inter % 4 == 0, hidden % heads == 0, heads % kv_heads == 0");
    }
    let vocab = s.n_bpe + 256;
    let special_base = s.n_bpe as u32;
    let bos = special_base + export::BOS_OFFSET;

    // --- tokenizer and token streams
    let read = |f: &str| -> Result<String> {
        let p = s.corpus.join(f);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let (train_text, val_text, test_text) = (
        read("train.txt")?,
        read("validation.txt")?,
        read("test.txt")?,
    );
    let t0 = Instant::now();
    let tok_json = rotor::tokenizer::train_llama3_style(&train_text, s.n_bpe, special_base)?;
    std::fs::create_dir_all(&s.out)?;
    let tok_path = s.out.join("tokenizer.json");
    std::fs::write(&tok_path, &tok_json)?;
    let tok = rotor::tokenizer::Tokenizer::from_file(&tok_path)?;
    let train = tok.encode(&train_text, false)?;
    let val = tok.encode(&val_text, false)?;
    // Exactly as `rotor perplexity` tokenizes (BOS first).
    let test = tok.encode(&test_text, true)?;
    eprintln!(
        "tokenizer: vocab {vocab} in {:.1}s; tokens: train {}, validation {}, test {} ({:.2} bytes/token on train)",
        t0.elapsed().as_secs_f64(),
        train.len(),
        val.len(),
        test.len(),
        train_text.len() as f64 / train.len() as f64
    );

    // --- model
    let dev = Device::Cpu;
    let shape = model::Shape {
        vocab,
        hidden: s.hidden,
        inter: s.inter,
        layers: s.layers,
        heads: s.heads,
        kv_heads: s.kv_heads,
        head_dim: s.hidden / s.heads,
        max_pos: s.max_pos,
    };
    let m = model::Model::new(shape, s.ctx, s.seed, &dev)?;
    let n_params = m.n_params();
    let n_ternary: usize = m.vars().0.iter().map(|v| v.elem_count()).sum();
    eprintln!(
        "model: {} layers, hidden {}, {} heads / {} kv heads (head_dim {}), inter {}, {:.2} M params ({:.2} M ternary), {threads} threads",
        s.layers,
        s.hidden,
        s.heads,
        s.kv_heads,
        shape.head_dim,
        s.inter,
        n_params as f64 / 1e6,
        n_ternary as f64 / 1e6
    );

    if let Some(n) = s.bench_steps {
        return bench(&m, &train, bos, s, n);
    }

    // --- baselines that need no training
    let targets_test = data::llamacpp_targets(&test, s.ctx);
    let unigram_test = data::unigram_ppl(&train, vocab, &targets_test);
    let unigram_test_all = data::unigram_ppl(&train, vocab, &test[1..]);
    let init_ppl = if s.no_init_baseline {
        None
    } else {
        export::export(&m, &tok_json, special_base, &s.init_out)?;
        let r = engine_ppl(&s.init_out, &test_text, s.ctx, threads, None)?;
        eprintln!(
            "untrained init through rotor: test PPL {:.1} ± {:.1}",
            r.ppl, r.ppl_stderr
        );
        Some(r)
    };
    eprintln!(
        "unigram (add-one) test PPL: {unigram_test:.1} on rotor's scored tokens, {unigram_test_all:.1} on all"
    );

    // --- training
    let (decay_vars, plain_vars) = m.vars();
    let mut opt_decay = AdamW::new(
        decay_vars.clone(),
        ParamsAdamW {
            lr: s.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: s.weight_decay,
        },
    )?;
    let mut opt_plain = AdamW::new(
        plain_vars.clone(),
        ParamsAdamW {
            lr: s.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )?;
    let all_vars: Vec<_> = decay_vars.iter().chain(&plain_vars).cloned().collect();
    let val_windows = data::eval_windows(&val, s.ctx, bos, s.eval_windows);
    let budget = s.minutes * 60.0;
    let lr_at = |step: usize, elapsed: f64| -> f64 {
        let frac = match s.steps {
            Some(n) => step as f64 / n as f64,
            None => elapsed / budget,
        }
        .clamp(0.0, 1.0);
        let warm = ((step + 1) as f64 / s.warmup.max(1) as f64).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * frac).cos());
        s.lr * warm * (s.min_lr_frac + (1.0 - s.min_lr_frac) * cos)
    };

    let csv_path = s.out.join("training.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    writeln!(csv, "step,tokens,elapsed_s,lr,train_loss,val_loss")?;
    let v0 = eval_nll(&m, &val_windows, 0, s.batch)?;
    writeln!(csv, "0,0,0.0,0,,{:.5}", v0.mean())?;
    csv.flush()?;
    eprintln!("step 0: val loss {:.4}", v0.mean());

    let bar = match s.steps {
        Some(n) => indicatif::ProgressBar::new(n as u64),
        None => indicatif::ProgressBar::new(budget.ceil() as u64),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(if s.steps.is_some() {
            "train [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta} {msg}"
        } else {
            "train [{bar:30}] {pos}/{len} s {elapsed_precise} {msg}"
        })?
        .progress_chars("=> "),
    );
    let mut rng = Rng::new(Rng::seed_from(&[s.seed, 0xDA7A]));
    let mut window = Vec::with_capacity(s.ctx + 1);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    let t_train = Instant::now();
    let mut step = 0usize;
    let mut tokens = 0usize;
    let (mut loss_sum, mut loss_n) = (0f64, 0usize);
    let mut last_train = f64::NAN;
    let mut last_val = v0.mean();
    let mut train_time = 0f64; // seconds in training steps only (no evals), for tokens/s
    loop {
        let elapsed = t_train.elapsed().as_secs_f64();
        let done = match s.steps {
            Some(n) => step >= n,
            None => elapsed >= budget,
        };
        if done {
            break;
        }
        let ts = Instant::now();
        let lr = lr_at(step, elapsed);
        opt_decay.set_learning_rate(lr);
        opt_plain.set_learning_rate(lr);
        inputs.clear();
        targets.clear();
        for _ in 0..s.batch {
            data::random_window(&train, s.ctx, bos, &mut rng, &mut window);
            inputs.extend_from_slice(&window[..s.ctx]);
            targets.extend_from_slice(&window[1..]);
        }
        let ids = Tensor::from_slice(&inputs, (s.batch, s.ctx), &dev)?;
        let tgt = Tensor::from_slice(&targets, s.batch * s.ctx, &dev)?;
        let logits = m.forward(&ids)?;
        let loss = logits.apply_op2(&tgt, ops::CrossEntropy)?;
        let mut grads = loss.backward()?;
        clip_grads(&mut grads, &all_vars, s.clip)?;
        opt_decay.step(&grads)?;
        opt_plain.step(&grads)?;
        let l = loss.to_scalar::<f32>()? as f64;
        if !l.is_finite() {
            bail!("loss is {l} at step {step}");
        }
        step += 1;
        tokens += s.batch * s.ctx;
        loss_sum += l;
        loss_n += 1;
        train_time += ts.elapsed().as_secs_f64();
        let tps = tokens as f64 / train_time;
        bar.set_position(match s.steps {
            Some(_) => step as u64,
            None => t_train.elapsed().as_secs_f64() as u64,
        });
        bar.set_message(format!(
            "step {step} loss {l:.3} val {last_val:.3} lr {lr:.2e} {tps:.0} tok/s ep {:.2}",
            tokens as f64 / train.len() as f64
        ));
        if step % s.eval_every == 0 {
            let v = eval_nll(&m, &val_windows, 0, s.batch)?;
            last_train = loss_sum / loss_n as f64;
            last_val = v.mean();
            (loss_sum, loss_n) = (0.0, 0);
            writeln!(
                csv,
                "{step},{tokens},{:.1},{lr:.6e},{last_train:.5},{last_val:.5}",
                t_train.elapsed().as_secs_f64()
            )?;
            csv.flush()?;
        }
    }
    let wall_train = t_train.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Final row (if the last step was not an evaluation step).
    let v_final = eval_nll(&m, &val_windows, 0, s.batch)?;
    if loss_n > 0 {
        last_train = loss_sum / loss_n as f64;
        writeln!(
            csv,
            "{step},{tokens},{wall_train:.1},{:.6e},{last_train:.5},{:.5}",
            lr_at(step, wall_train),
            v_final.mean()
        )?;
    }
    csv.flush()?;
    eprintln!(
        "trained {step} steps, {tokens} tokens ({:.2} epochs) in {wall_train:.0}s: train loss {last_train:.4}, val loss {:.4} (PPL {:.1})",
        tokens as f64 / train.len() as f64,
        v_final.mean(),
        v_final.mean().exp()
    );

    // --- export and score through the engine
    let sizes = export::export(&m, &tok_json, special_base, &s.out)?;
    let r_test = engine_ppl(&s.out, &test_text, s.ctx, threads, None)?;
    let r_val = engine_ppl(&s.out, &val_text, s.ctx, threads, None)?;
    eprintln!(
        "exported model through rotor (ctx {}): test PPL {:.2} ± {:.2} ({} tokens scored), validation PPL {:.2} ± {:.2}",
        s.ctx, r_test.ppl, r_test.ppl_stderr, r_test.tokens_scored, r_val.ppl, r_val.ppl_stderr
    );
    for (f, b) in &sizes {
        eprintln!("  {f}: {b} bytes");
    }

    // --- the same chunks through the QAT model itself (f32 scales, candle): the export's cost
    let mut cmp_windows = llamacpp_windows(&test, s.ctx, bos);
    cmp_windows.truncate(s.compare_chunks);
    let qat_cmp = eval_nll(&m, &cmp_windows, s.ctx / 2, s.batch)?;
    let eng_cmp = engine_ppl(&s.out, &test_text, s.ctx, threads, Some(cmp_windows.len()))?;
    eprintln!(
        "first {} test chunks: QAT model (candle, f32 scales) PPL {:.3}, exported model (rotor) PPL {:.3} ({} tokens)",
        cmp_windows.len(),
        qat_cmp.mean().exp(),
        eng_cmp.ppl,
        qat_cmp.n
    );

    let ppl_json = |r: &rotor::perplexity::PplResult| {
        json!({"ppl": r.ppl, "ppl_stderr": r.ppl_stderr, "mean_nll": r.mean_nll,
               "tokens_scored": r.tokens_scored, "chunks": r.chunks, "ctx": r.ctx,
               "convention": r.convention})
    };
    let report = json!({
        "what": "tiny BitNet b1.58 trained with quantization-aware training on the Austen corpus (train split), exported in the packed 2B-4T checkpoint format",
        "seed": s.seed,
        "git_rev": git_rev(),
        "threads": threads,
        "wall_time_s": {"total": t_start.elapsed().as_secs_f64(), "training": wall_train,
                         "training_steps_only": train_time},
        "model": {"params": n_params, "ternary_params": n_ternary, "shape": shape},
        "hyperparameters": args,
        "data": {"train_tokens": train.len(), "validation_tokens": val.len(), "test_tokens": test.len(),
                 "train_bytes_per_token": train_text.len() as f64 / train.len() as f64},
        "training": {"steps": step, "tokens": tokens, "epochs": tokens as f64 / train.len() as f64,
                     "tokens_per_s": tokens as f64 / train_time,
                     "final_train_loss": last_train,
                     "final_val_loss": v_final.mean(), "final_val_ppl": v_final.mean().exp(),
                     "val_loss_note": format!("mean over all {} targets of {} fixed validation windows of {} tokens (BOS first)", v_final.n, val_windows.len(), s.ctx),
                     "train_loss_note": "mean training loss over the steps since the previous evaluation"},
        "export_check": {
            "note": "the same first test chunks (llama.cpp convention) scored by the training forward (f32 masters, f32 absmean scales, candle) and by rotor on the exported checkpoint (bf16 scales, embeddings and norms)",
            "chunks": cmp_windows.len(), "tokens_scored": qat_cmp.n,
            "qat_candle_ppl": qat_cmp.mean().exp(), "exported_rotor_ppl": eng_cmp.ppl},
        "rotor_perplexity": {"test": ppl_json(&r_test), "validation": ppl_json(&r_val)},
        "baselines": {
            "uniform_ppl": vocab,
            "unigram_add_one_test_ppl": unigram_test,
            "unigram_note": "token frequencies of the tokenized train split, add-one smoothing over all 4096 ids; scored on the tokens rotor's llama.cpp convention scores (ctx as above); `unigram_add_one_test_ppl_all_tokens` scores every test token after the BOS",
            "unigram_add_one_test_ppl_all_tokens": unigram_test_all,
            "untrained_init_test": init_ppl.as_ref().map(ppl_json),
        },
        "files": sizes.iter().map(|(f, b)| (f.clone(), json!(b))).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::write(
        s.out.join("training.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    eprintln!(
        "wrote {} (total {:.0}s)",
        s.out.display(),
        t_start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Time the parts of a training step (`--bench-steps`).
fn bench(m: &model::Model, train: &[u32], bos: u32, s: &Args, n: usize) -> Result<()> {
    let (decay, plain) = m.vars();
    let all: Vec<_> = decay.iter().chain(&plain).cloned().collect();
    let mut opt = AdamW::new(
        all.clone(),
        ParamsAdamW {
            lr: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(1);
    let mut w = Vec::new();
    let (mut tf, mut tb, mut to) = (0f64, 0f64, 0f64);
    for i in 0..n + 1 {
        let (mut inp, mut tgt) = (vec![], vec![]);
        for _ in 0..s.batch {
            data::random_window(train, s.ctx, bos, &mut rng, &mut w);
            inp.extend_from_slice(&w[..s.ctx]);
            tgt.extend_from_slice(&w[1..]);
        }
        let ids = Tensor::from_slice(&inp, (s.batch, s.ctx), m.device())?;
        let tgt = Tensor::from_slice(&tgt, s.batch * s.ctx, m.device())?;
        let t0 = Instant::now();
        let loss = m.forward(&ids)?.apply_op2(&tgt, ops::CrossEntropy)?;
        let t1 = Instant::now();
        let mut grads = loss.backward()?;
        let t2 = Instant::now();
        clip_grads(&mut grads, &all, s.clip)?;
        opt.step(&grads)?;
        let t3 = Instant::now();
        if i > 0 {
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            to += (t3 - t2).as_secs_f64();
        }
    }
    let k = n as f64;
    let tokens = (s.batch * s.ctx) as f64;
    eprintln!(
        "per step ({} tokens): forward {:.3}s, backward {:.3}s, clip+optimizer {:.3}s; {:.0} tok/s",
        s.batch * s.ctx,
        tf / k,
        tb / k,
        to / k,
        tokens * k / (tf + tb + to)
    );
    Ok(())
}

/// Summed negative log-likelihood and count.
struct Nll {
    sum: f64,
    n: usize,
}

impl Nll {
    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }
}

/// Mean NLL over `windows` (each `L + 1` tokens: inputs `w[..L]`, targets `w[1..]`), scoring
/// input positions `first..L`, in batches of `batch` windows.
fn eval_nll(m: &model::Model, windows: &[Vec<u32>], first: usize, batch: usize) -> Result<Nll> {
    let mut out = Nll { sum: 0.0, n: 0 };
    for chunk in windows.chunks(batch) {
        let l = chunk[0].len() - 1;
        let b = chunk.len();
        let inputs: Vec<u32> = chunk.iter().flat_map(|w| w[..l].iter().copied()).collect();
        let targets: Vec<u32> = chunk.iter().flat_map(|w| w[1..].iter().copied()).collect();
        let ids = Tensor::from_slice(&inputs, (b, l), m.device())?;
        let logits = m.forward(&ids)?.detach().flatten_all()?.to_vec1::<f32>()?;
        let v = m.shape.vocab;
        for (i, (row, &t)) in logits.chunks_exact(v).zip(&targets).enumerate() {
            if i % l >= first {
                out.sum += rotor::perplexity::neg_log_softmax(row, t as usize);
                out.n += 1;
            }
        }
    }
    Ok(out)
}

/// rotor's llama.cpp chunks of `ctx` tokens (first replaced by BOS), as evaluation windows
/// of `ctx` tokens (inputs `ctx − 1`).
fn llamacpp_windows(tokens: &[u32], ctx: usize, bos: u32) -> Vec<Vec<u32>> {
    (0..tokens.len() / ctx)
        .map(|c| {
            let mut w = tokens[c * ctx..(c + 1) * ctx].to_vec();
            w[0] = bos;
            w
        })
        .collect()
}

/// Scale all gradients so that their global L2 norm is at most `max`.
fn clip_grads(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[candle_core::Var],
    max: f64,
) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max {
        let k = max / norm;
        for v in vars {
            if let Some(g) = grads.get(v) {
                let g = (g * k)?;
                grads.insert(v, g);
            }
        }
    }
    Ok(norm)
}

/// Perplexity of `text` through the engine: load the exported directory with rotor's loader,
/// tokenize with its tokenizer (BOS first), llama.cpp convention at `ctx`.
fn engine_ppl(
    dir: &Path,
    text: &str,
    ctx: usize,
    threads: usize,
    max_chunks: Option<usize>,
) -> Result<rotor::perplexity::PplResult> {
    let model = rotor::model::Model::load(
        dir,
        &rotor::model::LoadOptions {
            threads: Some(threads),
            ..Default::default()
        },
    )?;
    let tok = rotor::tokenizer::Tokenizer::from_dir(dir)?.context("no tokenizer.json")?;
    let tokens = tok.encode(text, true)?;
    let opts = rotor::perplexity::PplOptions {
        ctx,
        stride: None,
        max_chunks,
        batch: 64,
    };
    Ok(rotor::perplexity::perplexity(
        &model,
        &tokens,
        model.config.bos_token_id,
        &opts,
        rotor::model::VerifyCtx::default(),
        |_, _| {},
    )?)
}

/// Every candle op allocates its result; by default glibc returns large blocks to the kernel
/// (mmap / trim) and each step pays the page faults again (~10% of a step in the profile).
/// Keep freed memory in the heap instead.
fn keep_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum (HEAP_MAX_SIZE / 2)
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// `git describe`-like revision of the working tree (read-only git commands).
fn git_rev() -> Option<String> {
    let run = |a: &[&str]| {
        std::process::Command::new("git")
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = run(&["rev-parse", "HEAD"])?;
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

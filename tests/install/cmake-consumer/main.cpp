#include <sance/sance.hpp>

#include <cstdio>

int main() {
    sance::Config c;
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 16;
    sance::Ebm m(c);
    auto batch = sance::toy_dataset("8gaussians", 64, 0);
    sance::StepStats s{};
    for (int t = 0; t < 5; t++) s = m.train_step(batch);
    auto x = m.sample(4);
    std::printf("cmake consumer: %s, %llu steps, %zu floats sampled\n", sance::version().c_str(),
                static_cast<unsigned long long>(s.step), x.size());
    return s.step == 5 && x.size() == 8 ? 0 : 1;
}
